"""The worker's side of the job lifecycle: claim, heartbeat, finish, reap, requeue.

The database, not the broker, decides what runs. A message may arrive twice (Dramatiq
redelivers a dead worker's messages, the clock requeues pending jobs whose message was lost),
so every transition here is one conditional UPDATE that only one caller can win:

- `claim` moves a job `pending` → `running`; a duplicate delivery finds it claimed.
- Only one job runs on a server at a time: a claim that finds another job running on the
  same server is undone and reported as `busy_with` (the caller retries later).
- `finish` only ends a job that is still `running` (the reaper may have ended it first).
- `reap_stale` fails running jobs whose heartbeat stopped; they are NEVER run again.
- `requeue_candidates` lists pending jobs whose message never reached the queue or was lost.

`jobs.heartbeat_at` is "the last sign of life" of a job: for a running job the worker's
heartbeat; for a pending job when a message for it was last sent or deferred (so the clock
does not requeue a job whose message is alive).

Like every core module: plain functions on a Session, flush but never commit, no Slack,
Dramatiq or ansible-runner imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from core.tickets import open_incident
from db.base import utcnow
from db.models import Job, JobStatus, Server, Ticket, TicketKind, job_values

ENDINGS = frozenset({JobStatus.success, JobStatus.failed, JobStatus.cancelled})


# claim ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The outcome of `try_claim`.

    job: the job now `running` (claimed by this caller), else None.
    busy_with: the job running on the same server when the claim was refused for that.
    status: the job's status as found (None when the job does not exist).
    """

    job: Job | None
    busy_with: Job | None = None
    status: JobStatus | None = None

    @property
    def waiting(self) -> bool:
        """The job is still pending because its server is busy: try again later."""
        return self.job is None and self.busy_with is not None


def try_claim(session: Session, job_id: str, *, now: datetime | None = None) -> Claim:
    """Move the job `pending` → `running` if it is pending and its server is free.

    Concurrent claimants of the same server are serialised by a row lock on the server
    (MySQL) or by SQLite's single writer; the claim is then checked against other running
    jobs on that server and undone if there is one.
    """
    now = now or utcnow()
    found = session.execute(
        select(Job.id, Job.server_id, Job.status).where(Job.job_id == job_id)
    ).one_or_none()
    if found is None:
        return Claim(None, status=None)
    if found.status != JobStatus.pending:
        return Claim(None, status=found.status)

    # MySQL: serialise claims on this server. SQLite ignores FOR UPDATE; the UPDATE below
    # takes its database-wide write lock, which serialises there.
    session.execute(select(Server.id).where(Server.id == found.server_id).with_for_update())
    won = session.execute(
        update(Job)
        .where(Job.id == found.id, Job.status == JobStatus.pending)
        .values(job_values(status=JobStatus.running, started_at=now, heartbeat_at=now))
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        status = session.execute(select(Job.status).where(Job.id == found.id)).scalar_one()
        return Claim(None, status=status)

    # A locking read sees the latest committed rows on MySQL, whatever snapshot this
    # transaction started with.
    other_id = session.execute(
        select(Job.id)
        .where(Job.server_id == found.server_id, Job.status == JobStatus.running,
               Job.id != found.id)
        .limit(1)
        .with_for_update(read=True)
    ).scalar_one_or_none()
    if other_id is not None:
        session.execute(
            update(Job).where(Job.id == found.id)
            .values(job_values(status=JobStatus.pending, started_at=None, heartbeat_at=now))
            .execution_options(synchronize_session=False)
        )
        return Claim(None, busy_with=_load(session, other_id), status=JobStatus.pending)
    return Claim(_load(session, found.id), status=JobStatus.running)


def claim(session: Session, job_id: str, *, now: datetime | None = None) -> Job | None:
    """The job, now `running`, if this caller claimed it; None if it was not pending (a
    duplicate delivery, cancelled, finished) or its server is busy (see `try_claim`)."""
    return try_claim(session, job_id, now=now).job


def server_busy(session: Session, server_id: int, *,
                exclude_job_id: str | None = None) -> Job | None:
    """The job currently running on the server, if any (for messages like "waiting for")."""
    query = select(Job.id).where(Job.server_id == server_id, Job.status == JobStatus.running)
    if exclude_job_id is not None:
        query = query.where(Job.job_id != exclude_job_id)
    job_pk = session.execute(query.limit(1)).scalar_one_or_none()
    return None if job_pk is None else _load(session, job_pk)


def note_waiting(session: Session, job_id: str, *, now: datetime | None = None) -> None:
    """Record that a pending job's message is alive (deferred while its server is busy)."""
    session.execute(
        update(Job).where(Job.job_id == job_id, Job.status == JobStatus.pending)
        .values(heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


# while running --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulse:
    """What a heartbeat learned: is the job still ours to run, and was cancel asked for."""

    running: bool
    cancel_requested: bool


def heartbeat(session: Session, job_id: str, *, now: datetime | None = None) -> Pulse:
    """Mark a running job alive. `running=False` means it was ended elsewhere (reaped)."""
    touched = session.execute(
        update(Job).where(Job.job_id == job_id, Job.status == JobStatus.running)
        .values(heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    cancel = session.execute(
        select(Job.cancel_requested).where(Job.job_id == job_id)
    ).scalar_one_or_none()
    return Pulse(running=touched == 1, cancel_requested=bool(cancel))


# endings --------------------------------------------------------------------------------


def finish(session: Session, job_id: str, status: JobStatus, *,
           error_message: str | None = None, recap: Mapping[str, Any] | None = None,
           now: datetime | None = None) -> Job | None:
    """End a running job as `success`, `failed` or `cancelled` and set `completed_at`.

    A failed job gets its incident ticket (`core.tickets.open_incident`). Returns the job,
    or None when it was no longer running (the reaper ended it first: nothing changes).
    Raises ValueError for a status that is not an ending.
    """
    if status not in ENDINGS:
        raise ValueError(f"{status.value} is not a final status")
    values = job_values(status=status, completed_at=now or utcnow(),
                        error_message=error_message)
    if recap is not None:
        values["recap"] = dict(recap)
    ended = session.execute(
        update(Job).where(Job.job_id == job_id, Job.status == JobStatus.running)
        .values(values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if ended != 1:
        return None
    job = _load_by_uuid(session, job_id)
    if status == JobStatus.failed:
        open_incident(session, job)
    return job


def reap_stale(session: Session, *, now: datetime | None = None,
               grace: timedelta | float) -> list[Job]:
    """Fail running jobs whose heartbeat is older than `grace` (their worker died).

    Each gets a clear `error_message` ("worker lost: no heartbeat since …") and an incident
    ticket. They are never run again: the playbook may have done part of its work.
    """
    now = now or utcnow()
    if not isinstance(grace, timedelta):
        grace = timedelta(seconds=grace)
    cutoff = now - grace
    last_sign = func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at)
    stale = session.execute(
        select(Job.id, Job.job_id, last_sign.label("last_sign"))
        .where(Job.status == JobStatus.running, last_sign < cutoff)
        .order_by(Job.id)
    ).all()
    reaped: list[Job] = []
    for row in stale:
        since = row.last_sign.strftime("%Y-%m-%d %H:%M:%S UTC") if row.last_sign else "start"
        message = (f"worker lost: no heartbeat since {since}; the playbook may have stopped "
                   "part-way and was not run again")
        ended = session.execute(
            update(Job)
            .where(Job.id == row.id, Job.status == JobStatus.running,
                   func.coalesce(Job.heartbeat_at, Job.started_at, Job.created_at) < cutoff)
            .values(job_values(status=JobStatus.failed, completed_at=now,
                               error_message=message))
            .execution_options(synchronize_session=False)
        ).rowcount
        if ended == 1:
            job = _load(session, row.id)
            open_incident(session, job)
            reaped.append(job)
    return reaped


# requeue --------------------------------------------------------------------------------


def requeue_candidates(session: Session, *, now: datetime | None = None,
                       min_age: timedelta | float,
                       lost_after: timedelta | float | None = None) -> list[Job]:
    """Pending jobs that need their message sent (again).

    - never reached the queue (no message id; Redis was down at launch): quiet for `min_age`;
    - message lost (Redis restarted without persistence, a queue flushed): quiet for
      `lost_after` (default: 4 × `min_age`) since it was last sent or deferred.

    Requeueing is safe because `claim` lets only one delivery run the job; call
    `mark_requeued` for each job sent.
    """
    now = now or utcnow()
    min_age = min_age if isinstance(min_age, timedelta) else timedelta(seconds=min_age)
    if lost_after is None:
        lost_after = min_age * 4
    elif not isinstance(lost_after, timedelta):
        lost_after = timedelta(seconds=lost_after)
    last_sign = func.coalesce(Job.heartbeat_at, Job.created_at)
    rows = session.execute(
        select(Job.id).where(
            Job.status == JobStatus.pending,
            or_(and_(Job.dramatiq_message_id.is_(None), last_sign <= now - min_age),
                last_sign <= now - lost_after),
        ).order_by(Job.created_at, Job.id)
    ).scalars().all()
    return [_load(session, pk) for pk in rows]


def mark_requeued(session: Session, job_id: str, message_id: str, *,
                  now: datetime | None = None) -> None:
    """Record the message just sent for a pending job (its id, and when)."""
    session.execute(
        update(Job).where(Job.job_id == job_id, Job.status == JobStatus.pending)
        .values(dramatiq_message_id=message_id, heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


def incident_for(session: Session, job: Job) -> Ticket | None:
    """The newest incident ticket opened for the job, if any."""
    return session.execute(
        select(Ticket).where(Ticket.job_id == job.id, Ticket.kind == TicketKind.incident)
        .order_by(Ticket.id.desc()).limit(1)
    ).scalars().first()


def _load(session: Session, job_pk: int) -> Job:
    return session.execute(
        select(Job).where(Job.id == job_pk).execution_options(populate_existing=True)
    ).unique().scalar_one()


def _load_by_uuid(session: Session, job_id: str) -> Job:
    return session.execute(
        select(Job).where(Job.job_id == job_id).execution_options(populate_existing=True)
    ).unique().scalar_one()
