"""Change freezes (issue 16.4) and notification settings (seed v1.1, issue 16.3).

- `freeze_windows`: weekly (day and minute of start and end in a time zone) or one-off
  (UTC start and end) windows during which launches against an environment (NULL: all) are
  refused; `ended_at` marks one an admin ended. Its creator and ender are SET NULL, like
  the audit trail's users.
- `notification_settings`: one row per user (events, where: DM or a channel, quiet hours
  in a time zone) or per channel (a route admins set); failure events narrowed by
  environments and playbooks. A user's row goes with the user (CASCADE).
- `notification_log`: the notifications the clock sent, by unique `event_key`.

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
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
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

    op.create_table(
        "notification_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("environments", JSON, nullable=False),
        sa.Column("playbooks", JSON, nullable=False),
        sa.Column("deliver", sa.String(32), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=True),
        sa.Column("quiet_end", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_settings"),
        sa.UniqueConstraint("user_id", name="uq_notification_settings_user_id"),
        sa.UniqueConstraint("channel_id", name="uq_notification_settings_channel_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_notification_settings_user_id_users"),
    )
    op.create_table(
        "notification_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_key", sa.String(191), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_log"),
        sa.UniqueConstraint("event_key", name="uq_notification_log_event_key"),
    )


def downgrade() -> None:
    op.drop_table("notification_log")
    op.drop_table("notification_settings")
    op.drop_table("freeze_windows")  # its indexes go with it
