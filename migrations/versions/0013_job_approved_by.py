"""Who approved a production run, and when: `jobs.approved_by` (users, SET NULL), `approved_at`.

Set by the approval that releases the job (`core.approvals`); the job message, `/job` and the
run's message say "approved by @bob". Jobs approved before this revision keep both NULL
(their approval ticket and its `approval.approve` audit row say it).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("approved_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approved_at", TIMESTAMP, nullable=True))
        batch.create_foreign_key("fk_jobs_approved_by_users", "users", ["approved_by"], ["id"],
                                 ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("fk_jobs_approved_by_users", type_="foreignkey")
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
