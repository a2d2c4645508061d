"""Job templates (seed v1.2 `job_templates`) and schedules (issue 16).

- `job_templates`: a saved launch — playbook, target, validated variables, check mode, the
  variables a launch may override, the owner, and the playbook's hash when it was saved.
  Its playbook and owner are RESTRICT: a playbook or user with templates is not deleted
  from under them (playbooks are deactivated, never deleted, by `playbooks sync`).
- `schedules`: a template run on a cron expression in a time zone, or once at `run_at`;
  `next_run_at` (claimed by the clock with a conditional UPDATE), the missed-run policy,
  pause, the channel its runs post to, and the up-front approval (`approved_hash` of the
  template content an admin other than the owner approved). Its template and owner are
  RESTRICT; its approver SET NULL.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "job_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("playbook_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("check_mode", sa.Boolean(), nullable=False),
        sa.Column("overridable", JSON, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("playbook_hash", sa.CHAR(64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_templates"),
        sa.UniqueConstraint("name", name="uq_job_templates_name"),
        sa.ForeignKeyConstraint(["playbook_id"], ["playbooks.id"], ondelete="RESTRICT",
                                name="fk_job_templates_playbook_id_playbooks"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="RESTRICT",
                                name="fk_job_templates_owner_id_users"),
    )
    op.create_index("idx_job_templates_playbook_id", "job_templates", ["playbook_id"])
    op.create_index("idx_job_templates_owner_id", "job_templates", ["owner_id"])

    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("run_at", TIMESTAMP, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("missed", sa.String(8), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", TIMESTAMP, nullable=True),
        sa.Column("last_run_at", TIMESTAMP, nullable=True),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("approved_hash", sa.CHAR(64), nullable=True),
        sa.Column("approved_by", sa.Integer(), nullable=True),
        sa.Column("approved_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
        sa.ForeignKeyConstraint(["template_id"], ["job_templates.id"], ondelete="RESTRICT",
                                name="fk_schedules_template_id_job_templates"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="RESTRICT",
                                name="fk_schedules_owner_id_users"),
        sa.ForeignKeyConstraint(["approved_by"], ["users.id"], ondelete="SET NULL",
                                name="fk_schedules_approved_by_users"),
    )
    op.create_index("idx_schedules_due", "schedules", ["paused", "next_run_at"])
    op.create_index("idx_schedules_template_id", "schedules", ["template_id"])
    op.create_index("idx_schedules_owner_id", "schedules", ["owner_id"])


def downgrade() -> None:
    op.drop_table("schedules")  # its indexes go with it
    op.drop_table("job_templates")
