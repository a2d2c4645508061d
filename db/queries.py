"""The ERD's five common query patterns, as typed functions every part of Playbot shares.

Each query is written so that MariaDB/MySQL answers it from the index the ERD names for it
(a test runs EXPLAIN on MariaDB to prove it):

1. `recent_jobs` — the dashboard: jobs by status, newest first (`idx_jobs_status_created`).
2. `job_with_logs` — one job by primary key or uuid, its playbook/server/user joined on their
   primary keys, and its log lines by line number (`idx_joblogs_job_line`); `latest_log_lines`
   and `log_page` read the tail or any page of a long log from the same index.
3. `user_history` — a user's jobs in some statuses, newest first (`idx_jobs_user_status`).
4. `audit_trail` — everything recorded about one resource, newest first (`idx_audit_resource`).
5. `job_stats` — job counts by status over the last N days (a scan; fine for an aggregate).

Order: jobs come newest first by `created_at`, the primary key breaking ties; InnoDB keeps
the primary key at the end of every secondary index, so within one status (pattern 1) that
order is read straight from the index, with no sort. The audit trail is ordered by `id`:
the table is append-only, so insertion order is the order of events (immune to clock
differences between the processes that wrote the rows), again read from the index.

Functions only read and never commit (like any query, they autoflush pending changes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from db.base import utcnow
from db.models import AuditLog, Job, JobLog, JobStatus, LogLevel

# The job's playbook, server and user, fetched by primary key in one extra query each instead
# of the models' default JOIN, so that the jobs query itself stays a single-table index read.
_RELATED_BY_PK = (
    selectinload(Job.playbook),
    selectinload(Job.server),
    selectinload(Job.user),
    selectinload(Job.approver),
)


# Log lines are read as plain rows with what a log view shows — `line_number` (paging),
# `log_level`, `content` — not ORM objects, and without the per-line timestamp: building
# 100 tracked objects, or parsing 100 DATETIME(6) values, cost more than the database took
# to find the rows (bench: log_reads). The two reads are built once, with bound
# parameters: building a statement and its cache key per call cost as much again.
LogLine = Row[tuple[int, LogLevel, str]]
_LOG_LINE = select(JobLog.line_number, JobLog.log_level, JobLog.content)
_LATEST_LINES = (_LOG_LINE.where(JobLog.job_id == bindparam("job_pk"))
                 .order_by(JobLog.line_number.desc()).limit(bindparam("n")))
_PAGE = (_LOG_LINE.where(JobLog.job_id == bindparam("job_pk"),
                         JobLog.line_number > bindparam("after"))
         .order_by(JobLog.line_number).limit(bindparam("n")))


@dataclass(frozen=True)
class JobWithLogs:
    """A job (playbook, server and user loaded) and the log lines asked for, in order."""

    job: Job
    logs: list[LogLine]


def recent_jobs(
    session: Session,
    *,
    status: JobStatus | str | None = None,
    user_id: int | None = None,
    limit: int = 10,
    statuses: Iterable[JobStatus | str] | None = None,
) -> list[Job]:
    """Pattern 1: the newest jobs, optionally only those in `status` (or any of `statuses`)
    and/or of `user_id`.

    Archived jobs (the ERD's soft delete) only show when asked for by status.

    With a status: `idx_jobs_status_created` (or `idx_jobs_user_status` with a user too).
    Without one: newest by primary key (ids are given in creation order), so the query reads
    the table backwards from its end instead of sorting it.
    """
    stmt = select(Job).options(*_RELATED_BY_PK)
    if statuses is not None:
        stmt = stmt.where(Job.status.in_(sorted({JobStatus(s) for s in statuses},
                                                key=lambda s: s.value)))
    elif status is not None:
        stmt = stmt.where(Job.status == JobStatus(status))
    else:
        stmt = stmt.where(Job.status != JobStatus.archived)
    if user_id is not None:
        stmt = stmt.where(Job.user_id == user_id)
    if status is None and statuses is None and user_id is None:
        stmt = stmt.order_by(Job.id.desc())
    else:
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc())
    return list(session.scalars(stmt.limit(_positive(limit, "limit"))))


def count_jobs(
    session: Session,
    *,
    statuses: Iterable[JobStatus | str] | None = None,
    user_id: int | None = None,
) -> int:
    """How many jobs `recent_jobs` / `user_history` would list without a limit ("…and N more").

    Without `statuses`: every job but archived ones, as those lists do.
    """
    stmt = select(func.count(Job.id))
    if statuses is None:
        stmt = stmt.where(Job.status != JobStatus.archived)
    else:
        stmt = stmt.where(Job.status.in_(sorted({JobStatus(s) for s in statuses},
                                                key=lambda s: s.value)))
    if user_id is not None:
        stmt = stmt.where(Job.user_id == user_id)
    return int(session.scalar(stmt) or 0)


def get_job_by_ref(session: Session, job_pk_or_uuid: int | str) -> Job | None:
    """The job with this primary key (int) or `job_id` uuid (str), related rows joined on PKs."""
    # the models join playbook, server and user eagerly; the approver (often none) is read
    # by its own primary key lookup, only when there is one
    stmt = select(Job).options(selectinload(Job.approver))
    if isinstance(job_pk_or_uuid, int):
        stmt = stmt.where(Job.id == job_pk_or_uuid)
    else:
        stmt = stmt.where(Job.job_id == job_pk_or_uuid.strip().lower())
    return session.scalars(stmt).one_or_none()


def job_with_logs(
    session: Session, job_pk_or_uuid: int | str, *, last_lines: int | None = None
) -> JobWithLogs | None:
    """Pattern 2: a job with its playbook, server and user, and its log lines in order.

    `last_lines`: only the latest N lines (still in ascending order). None when no such job.
    """
    job = get_job_by_ref(session, job_pk_or_uuid)
    if job is None:
        return None
    if last_lines is None:
        logs = list(
            session.execute(_LOG_LINE.where(JobLog.job_id == job.id).order_by(JobLog.line_number))
        )
    else:
        logs = latest_log_lines(session, job.id, last_lines)
    return JobWithLogs(job=job, logs=logs)


def latest_log_lines(session: Session, job_pk: int, n: int) -> list[LogLine]:
    """The last `n` lines of a job's log, in ascending line order (reads the index backwards)."""
    newest_first = session.execute(_LATEST_LINES, {"job_pk": job_pk, "n": _positive(n, "n")})
    return list(reversed(list(newest_first)))


def log_page(
    session: Session, job_pk: int, *, after_line: int = 0, limit: int = 100
) -> list[LogLine]:
    """Up to `limit` lines of a job's log with a line number above `after_line`, in order.

    Keyset paging on `idx_joblogs_job_line`: any page costs the same, however deep it is.
    Pass the last line number of a page to get the next one.
    """
    return list(session.execute(
        _PAGE, {"job_pk": job_pk, "after": after_line, "n": _positive(limit, "limit")}))


def user_history(
    session: Session,
    user_id: int,
    statuses: Iterable[JobStatus | str] | None = None,
    limit: int = 20,
) -> list[Job]:
    """Pattern 3: a user's jobs, optionally only in `statuses`, newest first.

    Uses `idx_jobs_user_status` (user, then the listed statuses). Without `statuses`: every
    job but archived ones (the ERD's soft delete).
    """
    stmt = select(Job).options(*_RELATED_BY_PK).where(Job.user_id == user_id)
    if statuses is None:
        stmt = stmt.where(Job.status != JobStatus.archived)
    else:
        wanted = sorted({JobStatus(s) for s in statuses}, key=lambda s: s.value)
        if not wanted:
            return []
        stmt = stmt.where(Job.status.in_(wanted))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(_positive(limit, "limit"))
    return list(session.scalars(stmt))


def audit_by_user(session: Session, user_id: int, limit: int = 50) -> list[AuditLog]:
    """What one user did: the audit rows they wrote, newest first (`idx_audit_user_id`)."""
    stmt = (select(AuditLog).where(AuditLog.user_id == user_id)
            .order_by(AuditLog.id.desc()).limit(_positive(limit, "limit")))
    return list(session.scalars(stmt))


def audit_trail(
    session: Session, resource_type: str, resource_id: str | int | None, limit: int = 50
) -> list[AuditLog]:
    """Pattern 4: the audit rows about one resource, newest first (`idx_audit_resource`)."""
    stmt = select(AuditLog).where(AuditLog.resource_type == resource_type)
    if resource_id is None:
        stmt = stmt.where(AuditLog.resource_id.is_(None))
    else:
        stmt = stmt.where(AuditLog.resource_id == str(resource_id))
    stmt = stmt.order_by(AuditLog.id.desc()).limit(_positive(limit, "limit"))
    return list(session.scalars(stmt))


def job_stats(session: Session, days: int = 7) -> dict[JobStatus, int]:
    """Pattern 5: how many jobs were created in the last `days` days, per status.

    Every status is present (0 when none), in the enum's order.
    """
    since = utcnow() - timedelta(days=_positive(days, "days"))
    rows = session.execute(
        select(Job.status, func.count()).where(Job.created_at >= since).group_by(Job.status)
    )
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in rows:
        counts[JobStatus(status)] = int(count)
    return counts


def job_outcomes(session: Session, days: int = 7) -> dict[JobStatus, int]:
    """How the jobs created in the last `days` days ended: success, failed and cancelled,
    archived jobs counted by the outcome they keep (`jobs.outcome`), so archiving never
    changes what the statistics say about failures. Every ending is present (0 when none).
    """
    since = utcnow() - timedelta(days=_positive(days, "days"))
    rows = session.execute(
        select(Job.outcome, func.count()).where(Job.created_at >= since,
                                                Job.outcome.is_not(None))
        .group_by(Job.outcome)
    )
    counts = dict.fromkeys((JobStatus.success, JobStatus.failed, JobStatus.cancelled), 0)
    for outcome, count in rows:
        counts[JobStatus(outcome)] = int(count)
    return counts


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value
