"""The preview of an approval request: `tickets.preview_job_id` (jobs, SET NULL).

For a production run of a check-safe playbook, the launch also makes a check-mode run of
the same request (`core.jobs`: its preview); the approval card shows what it would change.
The link is cleared if the preview job is ever deleted. Older tickets keep it NULL: no
preview.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("preview_job_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_tickets_preview_job_id_jobs", "jobs", ["preview_job_id"],
                                 ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_preview_job_id_jobs", type_="foreignkey")
        batch.drop_column("preview_job_id")
