"""Job outcomes kept through archiving, message bookkeeping for the requeue, clock state.

- `jobs.outcome`: how the job ended (`success`, `failed`, `cancelled`), set with every
  ending and kept when retention moves the job to `archived`; the CHECK
  `ck_jobs_archived_keeps_outcome` makes the database refuse an archived job without one.
  Backfill: finished jobs get their status. Jobs archived before this revision lost it, so
  it is deduced from what every ending leaves behind: an incident ticket → `failed` (every
  failure opens one); else an error message, or never started → `cancelled` (cancel,
  reject and expiry always say why); else `success` (a success has no error message).
- `jobs.archived_at`: when retention archived the job (database time). NULL for the jobs
  archived before this revision: that time was never recorded.
- `jobs.enqueued_at` / `jobs.received_at`: database time of the last queue message sent
  for the job's run and of the last one a worker took (`core.execution`: the requeue sends
  only what is lost). Backfill: pending jobs that have a message id get
  `enqueued_at = coalesce(heartbeat_at, created_at)`.
- `clock_state`: rows the clock processes share — the `retention` lease and the queue
  epoch last seen (`queue_epoch`), both in database time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
STATUSES = ("pending", "awaiting_approval", "running", "success", "failed", "cancelled",
            "archived")
CHECK_NAME = "archived_keeps_outcome"
CHECK_SQL = ("(outcome IS NULL OR outcome IN ('success', 'failed', 'cancelled')) "
             "AND (status <> 'archived' OR outcome IS NOT NULL)")
STATE_ROWS = ("retention", "queue_epoch")

jobs = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("status", sa.String(24)),
    sa.column("outcome", sa.String(24)),
    sa.column("error_message", sa.Text()),
    sa.column("started_at", TIMESTAMP),
    sa.column("created_at", TIMESTAMP),
    sa.column("heartbeat_at", TIMESTAMP),
    sa.column("dramatiq_message_id", sa.String(64)),
    sa.column("enqueued_at", TIMESTAMP),
)
tickets = sa.table("tickets", sa.column("job_id", sa.Integer()), sa.column("kind", sa.String(24)))


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("outcome", sa.Enum(*STATUSES, name="job_status", length=24),
                                   nullable=True))
        batch.add_column(sa.Column("archived_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("enqueued_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("received_at", TIMESTAMP, nullable=True))
    _backfill()
    with op.batch_alter_table("jobs") as batch:
        batch.create_check_constraint(CHECK_NAME, sa.text(CHECK_SQL))

    state = op.create_table(
        "clock_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_clock_state"),
    )
    op.bulk_insert(state, [{"name": name} for name in STATE_ROWS])


def downgrade() -> None:
    op.drop_table("clock_state")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(CHECK_NAME, type_="check")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("received_at")
        batch.drop_column("enqueued_at")
        batch.drop_column("archived_at")
        batch.drop_column("outcome")


def _backfill() -> None:
    """Outcomes of finished and archived jobs; when the message of a pending job was sent.
    Plain SQL statements, so offline scripts carry them too."""
    op.execute(sa.update(jobs).where(jobs.c.status.in_(["success", "failed", "cancelled"]))
               .values(outcome=jobs.c.status))
    incident = sa.exists().where(tickets.c.job_id == jobs.c.id, tickets.c.kind == "incident")
    archived = jobs.c.status == "archived"
    op.execute(sa.update(jobs).where(archived, incident).values(outcome="failed"))
    op.execute(sa.update(jobs).where(archived, jobs.c.outcome.is_(None),
                                     sa.or_(jobs.c.error_message.is_not(None),
                                            jobs.c.started_at.is_(None)))
               .values(outcome="cancelled"))
    op.execute(sa.update(jobs).where(archived, jobs.c.outcome.is_(None))
               .values(outcome="success"))
    op.execute(sa.update(jobs).where(jobs.c.status == "pending",
                                     jobs.c.dramatiq_message_id.is_not(None))
               .values(enqueued_at=sa.func.coalesce(jobs.c.heartbeat_at, jobs.c.created_at)))
