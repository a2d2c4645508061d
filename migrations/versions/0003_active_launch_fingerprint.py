"""jobs.active_fingerprint: one job in progress per identical launch, enforced by the database.

A job that is pending, awaiting approval or running (and not asked to stop) carries the
SHA-256 of what makes two launches identical (user, playbook, server, check mode, extra
vars); the column is unique, NULL for every other job, so concurrent identical launches
cannot both create a job.

Existing jobs in progress get their fingerprint here. When several of them are identical,
only the newest carries it (the older ones simply no longer answer repeated launches).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
ACTIVE = ("pending", "awaiting_approval", "running")

jobs = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("user_id", sa.Integer()),
    sa.column("playbook_id", sa.Integer()),
    sa.column("server_id", sa.Integer()),
    sa.column("status", sa.String(24)),
    sa.column("check_mode", sa.Boolean()),
    sa.column("cancel_requested", sa.Boolean()),
    sa.column("extra_vars", JSON),
    sa.column("active_fingerprint", sa.CHAR(64)),
)


def fingerprint(user_id: int, playbook_id: int, server_id: int, check_mode: bool,
                extra_vars: Mapping[str, Any]) -> str:
    """A frozen copy of `core.jobs.launch_fingerprint` as of this revision (a test checks
    that both agree)."""
    canonical = json.dumps(
        {"user": user_id, "playbook": playbook_id, "server": server_id,
         "check_mode": bool(check_mode), "extra_vars": dict(extra_vars)},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("active_fingerprint", sa.CHAR(64), nullable=True))
    _backfill()
    op.create_index("idx_jobs_active_fingerprint", "jobs", ["active_fingerprint"], unique=True)


def downgrade() -> None:
    op.drop_index("idx_jobs_active_fingerprint", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("active_fingerprint")


def _backfill() -> None:
    """Fingerprint the jobs in progress, the newest first; an older identical one stays NULL.

    Offline (`--sql`) scripts cannot read rows: there the existing jobs stay NULL, which only
    means a repeated launch of one of them creates a new job.
    """
    if context.is_offline_mode():
        return
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.user_id, jobs.c.playbook_id, jobs.c.server_id,
                  jobs.c.check_mode, jobs.c.extra_vars)
        .where(jobs.c.status.in_(ACTIVE), jobs.c.cancel_requested.is_(sa.false()))
        .order_by(jobs.c.id.desc())
    ).all()
    taken: set[str] = set()
    for row in rows:
        value = fingerprint(row.user_id, row.playbook_id, row.server_id, row.check_mode,
                            row.extra_vars or {})
        if value in taken:
            continue
        taken.add(value)
        bind.execute(sa.update(jobs).where(jobs.c.id == row.id)
                     .values(active_fingerprint=value))
