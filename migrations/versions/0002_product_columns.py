"""Product columns beyond the seed: Slack identities and messages, heartbeat, approvals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("slack_user_id", sa.String(32), nullable=True))
        batch.create_unique_constraint("uq_users_slack_user_id", ["slack_user_id"])

    with op.batch_alter_table("servers") as batch:
        batch.add_column(
            sa.Column("connection", sa.String(16), nullable=False, server_default="ssh")
        )

    with op.batch_alter_table("playbooks") as batch:
        batch.add_column(
            sa.Column("allow_free_vars", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("timeout_seconds", sa.Integer(), nullable=True))

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("check_mode", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("slack_channel_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("slack_message_ts", sa.String(32), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", TIMESTAMP, nullable=True))
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("request_key", sa.String(128), nullable=True))
        batch.add_column(sa.Column("retry_of_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("recap", JSON, nullable=True))
        batch.create_unique_constraint("uq_jobs_request_key", ["request_key"])
        batch.create_foreign_key(
            "fk_jobs_retry_of_id_jobs", "jobs", ["retry_of_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column(
                "kind",
                sa.Enum("incident", "approval", name="ticket_kind", length=24),
                nullable=False,
                server_default="incident",
            )
        )
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("expires_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("slack_channel_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("slack_message_ts", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_tickets_assignee_id_users", "users", ["assignee_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("fk_tickets_assignee_id_users", type_="foreignkey")
        for column in (
            "slack_message_ts", "slack_channel_id", "expires_at", "resolution_note",
            "assignee_id", "kind",
        ):
            batch.drop_column(column)

    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("fk_jobs_retry_of_id_jobs", type_="foreignkey")
        batch.drop_constraint("uq_jobs_request_key", type_="unique")
        for column in (
            "recap", "retry_of_id", "request_key", "cancel_requested", "heartbeat_at",
            "slack_message_ts", "slack_channel_id", "check_mode",
        ):
            batch.drop_column(column)

    with op.batch_alter_table("playbooks") as batch:
        batch.drop_column("timeout_seconds")
        batch.drop_column("allow_free_vars")

    with op.batch_alter_table("servers") as batch:
        batch.drop_column("connection")

    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_slack_user_id", type_="unique")
        batch.drop_column("slack_user_id")
