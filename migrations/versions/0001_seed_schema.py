"""v1.0.0 seed schema: the seven tables of ERD.md, their keys and indexes, append-only audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, length=24)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("email", sa.String(255), nullable=True),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", _enum("user_role", "admin", "operator", "viewer"), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("last_login", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("idx_users_role", "users", ["role"])

    op.create_table(
        "servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("os_type", sa.String(50), nullable=True),
        sa.Column("os_version", sa.String(50), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=False),
        sa.Column("ssh_user", sa.String(64), nullable=True),
        sa.Column("ssh_key_path", sa.String(512), nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column(
            "environment",
            _enum("server_environment", "production", "staging", "development"),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_servers"),
        sa.UniqueConstraint("hostname", name="uq_servers_hostname"),
    )
    op.create_index("idx_servers_ip_address", "servers", ["ip_address"])
    op.create_index("idx_servers_active_env", "servers", ["is_active", "environment"])

    op.create_table(
        "playbooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("file_path", sa.String(512), nullable=False),
        sa.Column("file_hash", sa.CHAR(64), nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_playbooks"),
        sa.UniqueConstraint("name", name="uq_playbooks_name"),
    )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.CHAR(36), nullable=False),
        sa.Column("playbook_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            _enum(
                "job_status",
                "pending",
                "awaiting_approval",
                "running",
                "success",
                "failed",
                "cancelled",
                "archived",
            ),
            nullable=False,
        ),
        sa.Column("dramatiq_message_id", sa.String(64), nullable=True),
        sa.Column("extra_vars", JSON, nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["playbook_id"], ["playbooks.id"], name="fk_jobs_playbook_id_playbooks",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"], ["servers.id"], name="fk_jobs_server_id_servers", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_jobs_user_id_users", ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("job_id", name="uq_jobs_job_id"),
    )
    op.create_index("idx_jobs_playbook_id", "jobs", ["playbook_id"])
    op.create_index("idx_jobs_server_id", "jobs", ["server_id"])
    op.create_index("idx_jobs_user_id", "jobs", ["user_id"])
    op.create_index("idx_jobs_status", "jobs", ["status"])
    op.create_index("idx_jobs_dramatiq_message_id", "jobs", ["dramatiq_message_id"])
    op.create_index("idx_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("idx_jobs_user_status", "jobs", ["user_id", "status"])

    op.create_table(
        "job_logs",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "log_level", _enum("log_level", "DEBUG", "INFO", "WARNING", "ERROR"), nullable=False
        ),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_logs_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_logs"),
    )
    op.create_index("idx_joblogs_job_id", "job_logs", ["job_id"])
    op.create_index("idx_joblogs_timestamp", "job_logs", ["timestamp"])
    op.create_index("idx_joblogs_job_line", "job_logs", ["job_id", "line_number"], unique=True)

    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.CHAR(36), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "status",
            _enum("ticket_status", "open", "in_progress", "resolved", "closed"),
            nullable=False,
        ),
        sa.Column(
            "priority",
            _enum("ticket_priority", "critical", "high", "medium", "low"),
            nullable=False,
        ),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_tickets_job_id_jobs", ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_tickets_created_by_users", ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
        sa.UniqueConstraint("ticket_id", name="uq_tickets_ticket_id"),
    )
    op.create_index("idx_tickets_job_id", "tickets", ["job_id"])
    op.create_index("idx_tickets_created_by", "tickets", ["created_by"])
    op.create_index("idx_tickets_status", "tickets", ["status"])
    op.create_index("idx_tickets_status_priority", "tickets", ["status", "priority"])

    op.create_table(
        "audit_logs",
        sa.Column("id", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("ip_address", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(255), nullable=True),
        sa.Column("timestamp", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_audit_logs_user_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_logs"),
    )
    op.create_index("idx_audit_user_id", "audit_logs", ["user_id"])
    op.create_index("idx_audit_action", "audit_logs", ["action"])
    op.create_index("idx_audit_resource_type", "audit_logs", ["resource_type"])
    op.create_index("idx_audit_timestamp", "audit_logs", ["timestamp"])
    op.create_index("idx_audit_resource", "audit_logs", ["resource_type", "resource_id"])
    op.create_index("idx_audit_action_timestamp", "audit_logs", ["action", "timestamp"])

    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    """UPDATE and DELETE on audit_logs fail at the database, whoever sends them.

    The one UPDATE allowed is the ERD's ON DELETE SET NULL of user_id (SQLite runs FK
    actions as UPDATEs that fire triggers; MySQL does not fire triggers for FK actions at
    all). SQLite only lets it through once the user row is really gone, so a plain
    `UPDATE audit_logs SET user_id = NULL` cannot erase who did something.
    """
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs "
            "WHEN NOT (NEW.user_id IS NULL AND OLD.user_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = OLD.user_id) "
            "AND NEW.id = OLD.id AND NEW.action = OLD.action "
            "AND NEW.resource_type = OLD.resource_type "
            "AND NEW.resource_id IS OLD.resource_id AND NEW.details IS OLD.details "
            "AND NEW.ip_address IS OLD.ip_address AND NEW.user_agent IS OLD.user_agent "
            "AND NEW.timestamp = OLD.timestamp) "
            "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs "
            "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only'"
        )
        op.execute(
            "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only'"
        )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_delete")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_update")
    for table in ("audit_logs", "tickets", "job_logs", "jobs", "playbooks", "servers", "users"):
        op.drop_table(table)
