"""Change freezes (issue 16.4).

- `freeze_windows`: weekly (day and minute of start and end in a time zone) or one-off
  (UTC start and end) windows during which launches against an environment (NULL: all) are
  refused; `ended_at` marks one an admin ended. Its creator and ender are SET NULL, like
  the audit trail's users.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ENVIRONMENT = sa.Enum("production", "staging", "development", name="freeze_environment",
                      native_enum=True, create_constraint=False, length=24)


def upgrade() -> None:
    op.create_table(
        "freeze_windows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("environment", ENVIRONMENT, nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_day", sa.Integer(), nullable=True),
        sa.Column("start_minute", sa.Integer(), nullable=True),
        sa.Column("end_day", sa.Integer(), nullable=True),
        sa.Column("end_minute", sa.Integer(), nullable=True),
        sa.Column("starts_at", TIMESTAMP, nullable=True),
        sa.Column("ends_at", TIMESTAMP, nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("ended_by", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_freeze_windows"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL",
                                name="fk_freeze_windows_created_by_users"),
        sa.ForeignKeyConstraint(["ended_by"], ["users.id"], ondelete="SET NULL",
                                name="fk_freeze_windows_ended_by_users"),
    )
    op.create_index("idx_freeze_windows_ended_at", "freeze_windows", ["ended_at"])


def downgrade() -> None:
    op.drop_table("freeze_windows")  # its indexes go with it
