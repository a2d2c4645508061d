"""Approvals bound to the exact request, and several approvers: three columns of `tickets`.

- `request_digest` (CHAR(64)): the digest of the request an approval ticket approves
  (`core.request_digest`: the playbook's hash, the variables, the target server, check
  mode), taken at launch. The approval and the worker's claim compute it again; a
  difference voids the approval and cancels the job.
- `approvals_needed` (INTEGER): how many distinct admins must approve
  (`PLAYBOT_PRODUCTION_APPROVERS` at launch); NULL means one.
- `approvals` (JSON): the approvals given so far, oldest first
  (`[{"user_id": 3, "username": "bob", "at": "…"}]`), while the ticket waits for more.

Tickets made before this revision keep all three NULL: one approver, no digest check.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("request_digest", sa.CHAR(64), nullable=True))
        batch.add_column(sa.Column("approvals_needed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("approvals", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("approvals")
        batch.drop_column("approvals_needed")
        batch.drop_column("request_digest")
