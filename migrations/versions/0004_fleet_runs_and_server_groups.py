"""Fleet runs and server groups: jobs.run_id, jobs.running_server_id, server_groups (seed v1.2),
servers.host_vars, and a servers.ip_address wide enough for DNS names.

- `jobs.run_id`: the jobs of one launch share it; one Ansible run executes them together.
  Existing jobs each become a run of one (their own job_id).
- `jobs.running_server_id`: the job's server while it runs, NULL otherwise; unique, so the
  database refuses a second running job on one server. Existing running jobs get theirs
  (when two already run on one server, only the older keeps it).
- `server_groups`, `server_group_children` (a group inside another, several parents
  allowed, as in Ansible) and `server_group_members` (a server directly in a group).
- `servers.host_vars`: inventory host variables that are not connection columns.
- `servers.ip_address`: 45 -> 255 characters (Ansible's `ansible_host`: an IP or a DNS name).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")

jobs = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("job_id", sa.CHAR(36)),
    sa.column("server_id", sa.Integer()),
    sa.column("status", sa.String(24)),
    sa.column("run_id", sa.CHAR(36)),
    sa.column("running_server_id", sa.Integer()),
)
servers = sa.table("servers", sa.column("host_vars", JSON))


def upgrade() -> None:
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("ip_address", existing_type=sa.String(45), type_=sa.String(255),
                           existing_nullable=True)
        batch.add_column(sa.Column("host_vars", JSON, nullable=True))
    if not context.is_offline_mode():
        op.get_bind().execute(sa.update(servers).values(host_vars={}))
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("host_vars", existing_type=JSON, nullable=False)

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_id", sa.CHAR(36), nullable=True))
        batch.add_column(sa.Column("running_server_id", sa.Integer(), nullable=True))
    _backfill_jobs()
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("run_id", existing_type=sa.CHAR(36), nullable=False)
    op.create_index("idx_jobs_run_id", "jobs", ["run_id"])
    op.create_index("idx_jobs_running_server_id", "jobs", ["running_server_id"], unique=True)

    op.create_table(
        "server_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_groups"),
        sa.UniqueConstraint("name", name="uq_server_groups_name"),
    )
    op.create_table(
        "server_group_children",
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("parent_id", "child_id", name="pk_server_group_children"),
        sa.ForeignKeyConstraint(["parent_id"], ["server_groups.id"], ondelete="CASCADE",
                                name="fk_server_group_children_parent_id_server_groups"),
        sa.ForeignKeyConstraint(["child_id"], ["server_groups.id"], ondelete="CASCADE",
                                name="fk_server_group_children_child_id_server_groups"),
    )
    op.create_index("idx_server_group_children_child_id", "server_group_children",
                    ["child_id"])
    op.create_table(
        "server_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "server_id", name="pk_server_group_members"),
        sa.ForeignKeyConstraint(["group_id"], ["server_groups.id"], ondelete="CASCADE",
                                name="fk_server_group_members_group_id_server_groups"),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"], ondelete="CASCADE",
                                name="fk_server_group_members_server_id_servers"),
    )
    op.create_index("idx_server_group_members_server_id", "server_group_members",
                    ["server_id"])


def downgrade() -> None:
    op.drop_table("server_group_members")  # their indexes go with them
    op.drop_table("server_group_children")
    op.drop_table("server_groups")
    op.drop_index("idx_jobs_running_server_id", table_name="jobs")
    op.drop_index("idx_jobs_run_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("running_server_id")
        batch.drop_column("run_id")
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("host_vars")
        # addresses longer than 45 characters would not fit the seed's column
        batch.alter_column("ip_address", existing_type=sa.String(255), type_=sa.String(45),
                           existing_nullable=True)


def _backfill_jobs() -> None:
    """Every existing job is a run of one; running jobs hold their server (the oldest one,
    should two already run on the same server). Offline scripts use SQL alone."""
    op.execute(sa.update(jobs).values(run_id=jobs.c.job_id))
    if context.is_offline_mode():
        return
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.server_id).where(jobs.c.status == "running")
        .order_by(jobs.c.id)
    ).all()
    held: set[int] = set()
    for row in rows:
        if row.server_id in held:
            continue
        held.add(row.server_id)
        bind.execute(sa.update(jobs).where(jobs.c.id == row.id)
                     .values(running_server_id=row.server_id))
