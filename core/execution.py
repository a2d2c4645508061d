"""The worker's side of the job lifecycle: claim, heartbeat, finish, reap, requeue.

The database, not the broker, decides what runs. A message may arrive twice (Dramatiq
redelivers a dead worker's messages, the clock requeues pending jobs whose message was lost),
so every transition here is one conditional UPDATE that only one caller can win:

- `try_claim` starts a job's whole run (every pending job of it `pending` → `running`) or
  none of it; a duplicate delivery finds it claimed.
- Only one job runs on a server at a time (`jobs.running_server_id` is unique): a claim
  that finds one of its servers busy is undone and reports the jobs running there as
  `busy_with` (the caller retries later).
- `finish` only ends a job that is still `running` (the reaper may have ended it first).
- `reap_stale` fails running jobs whose heartbeat stopped; they are NEVER run again.
- `requeue_candidates` lists pending jobs whose message never reached the queue or is
  provably gone — never one that merely waits behind a backlog (see below);
  `claim_requeue` lets exactly one clock send it again.

One clock: every time written or compared here is the database's (`db.clock`), whatever
the clock of the worker, web or clock process says. `jobs.heartbeat_at` is a running job's
last sign of life. For pending jobs, `enqueued_at` is when the last message for the run was
sent (launch, approval, requeue, or a worker deferring it while a server is busy) and
`received_at` when a worker last took one (`note_received`, written before the claim). A
pending job's message is lost, and only then sent again, when:

- it was never sent (`enqueued_at` NULL; Redis was down at launch) for `min_age`;
- a worker took it (`received_at >= enqueued_at`) but neither claimed the run nor sent it
  on for `lost_after` (the delivery died between receipt and claim: e.g. the deferral's
  send failed);
- it was sent and not taken before the broker last lost its data (`broker_lost_at`: the
  queue epoch changed — Redis restarted or was flushed, the embedded process restarted).

A message waiting in a long queue is none of these, however long it waits.

Like every core module: plain functions on a Session, flush but never commit, no Slack,
Dramatiq or ansible-runner imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.previews import is_preview
from core.tickets import open_incident
from db.clock import db_now
from db.clock import now as db_time
from db.models import Job, JobStatus, Server, Ticket, TicketKind, job_values
from db.session import savepoint

ENDINGS = frozenset({JobStatus.success, JobStatus.failed, JobStatus.cancelled})


# claim ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The outcome of `try_claim`: a run either starts whole or not at all.

    jobs: the run's jobs now `running` (claimed by this caller), empty otherwise.
    busy_with: jobs of other runs running on this run's servers, when that refused the claim.
    awaiting_approval: some job of the run still waits for an admin's approval.
    status: the named job's status as found (None when the job does not exist).
    contended: a server was taken by a concurrent claim not yet visible here (`busy_with`
        is then empty): wait and try again like for a busy server.
    """

    jobs: tuple[Job, ...] = ()
    busy_with: tuple[Job, ...] = ()
    awaiting_approval: bool = False
    status: JobStatus | None = None
    contended: bool = False

    @property
    def job(self) -> Job | None:
        """The first claimed job (a run of one: the job itself), else None."""
        return self.jobs[0] if self.jobs else None

    @property
    def waiting(self) -> bool:
        """The run is still pending because some of its servers are busy: try again later."""
        return not self.jobs and (bool(self.busy_with) or self.contended)


def try_claim(session: Session, job_id: str, *, now: datetime | None = None) -> Claim:
    """Start the run of `job_id`: move every pending job of the run to `running`, or none.

    A run starts only when none of its jobs awaits approval and every server of its pending
    jobs is free ("wait for all": `serial`, `run_once` and groups then mean what they mean
    under ansible-playbook); jobs that ended before the start (cancelled, rejected) are left
    out. Concurrent claims never deadlock and never put two running jobs on one server:

    - the servers rows of the run are locked with one `SELECT ... FOR UPDATE` in id order
      (every claimer takes them in the same order; launches insert jobs in that order too);
    - the jobs move in one UPDATE setting `running_server_id`, whose unique index makes the
      database itself refuse a second running job on a server. That UPDATE runs in a
      SAVEPOINT: when a server is busy it is rolled back (nothing of the claim stays) and the
      jobs running there are reported in `busy_with`.

    No locking read of `jobs` is taken (a shared-lock read of a server's running jobs
    deadlocked with concurrent claims on MariaDB).

    `started_at` and `heartbeat_at` are the database's time (`now` only in tests).
    """
    now = now or db_time(session)
    found = session.execute(
        select(Job.run_id, Job.status).where(Job.job_id == job_id)
    ).one_or_none()
    if found is None:
        return Claim(status=None)
    members = session.execute(
        select(Job.id, Job.server_id, Job.status).where(Job.run_id == found.run_id)
        .order_by(Job.id)
    ).all()
    if any(m.status == JobStatus.awaiting_approval for m in members):
        return Claim(awaiting_approval=True, status=found.status)
    pending = [m for m in members if m.status == JobStatus.pending]
    if not pending:
        return Claim(status=found.status)
    server_ids = sorted({m.server_id for m in pending})
    # MySQL: serialise the claims of these servers, always in id order. SQLite ignores FOR
    # UPDATE; its single writer serialises there.
    session.execute(select(Server.id).where(Server.id.in_(server_ids)).order_by(Server.id)
                    .with_for_update())
    pending_ids = [m.id for m in pending]
    try:
        with savepoint(session):
            session.execute(
                update(Job)
                .where(Job.id.in_(pending_ids), Job.status == JobStatus.pending)
                .values(job_values(status=JobStatus.running, started_at=now,
                                   heartbeat_at=now, running_server_id=Job.server_id))
                .execution_options(synchronize_session=False)
            )
    except IntegrityError:
        busy = session.execute(
            select(Job.id).where(Job.running_server_id.in_(server_ids)).order_by(Job.id)
        ).scalars().all()
        return Claim(busy_with=tuple(_load(session, pk) for pk in busy),
                     status=JobStatus.pending, contended=not busy)
    claimed = session.execute(
        select(Job.id).where(Job.id.in_(pending_ids), Job.status == JobStatus.running,
                             Job.started_at == now)
        .order_by(Job.id)
    ).scalars().all()
    if not claimed:
        status = session.execute(select(Job.status).where(Job.job_id == job_id)).scalar_one()
        return Claim(status=status)
    return Claim(jobs=tuple(_load(session, pk) for pk in claimed), status=JobStatus.running)


def note_received(session: Session, job_id: str) -> None:
    """Record that a worker took a message for the run of `job_id` (before claiming it):
    from now on the requeue treats that message as delivered, not as queued."""
    _touch_pending_run(session, job_id, received_at=db_now())


def note_resent(session: Session, job_id: str) -> None:
    """Record that a new message for the run of `job_id` was sent (a worker deferring the
    run while a server is busy)."""
    _touch_pending_run(session, job_id, enqueued_at=db_now())


def _touch_pending_run(session: Session, job_id: str, **values: Any) -> None:
    run_id = session.execute(select(Job.run_id).where(Job.job_id == job_id)).scalar()
    if run_id is None:
        return
    session.execute(
        update(Job).where(Job.run_id == run_id, Job.status == JobStatus.pending)
        .values(values).execution_options(synchronize_session=False)
    )


# while running --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulse:
    """What a heartbeat learned: is the job still ours to run, and was cancel asked for."""

    running: bool
    cancel_requested: bool


def heartbeat(session: Session, job_ids: str | Sequence[str], *,
              now: datetime | None = None) -> Pulse:
    """Mark the running jobs of a run alive (one job id, or every job id of the run).

    `running=False` means none of them is running any more (ended elsewhere: reaped);
    `cancel_requested` is True when a cancel was asked for any of them (ansible-runner can
    only stop the whole run).
    """
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
    # by primary key, so the rows are locked in id order as claims and cancels lock them
    # (by job_id they would be locked in uuid order, and a run's cancel could deadlock it)
    pks = session.execute(select(Job.id).where(Job.job_id.in_(ids))).scalars().all()
    touched = session.execute(
        update(Job).where(Job.id.in_(pks), Job.status == JobStatus.running)
        .values(heartbeat_at=now or db_now())
        .execution_options(synchronize_session=False)
    ).rowcount
    return Pulse(running=touched > 0, cancel_requested=cancel_requested(session, ids))


def cancel_requested(session: Session, job_ids: Sequence[str]) -> bool:
    """Whether a cancel was asked for any of these jobs."""
    return bool(session.execute(
        select(func.count()).select_from(Job)
        .where(Job.job_id.in_(list(job_ids)), Job.cancel_requested.is_(True))
    ).scalar_one())


# endings --------------------------------------------------------------------------------


def finish(session: Session, job_id: str, status: JobStatus, *,
           error_message: str | None = None, recap: Mapping[str, Any] | None = None,
           now: datetime | None = None, started_at: datetime | None = None) -> Job | None:
    """End a running job as `success`, `failed` or `cancelled` and set `completed_at`.

    started_at: when its host's work really began (a fleet run's host may start later than
    the claim); `now` and `started_at` must be database time (the default `completed_at`
    is). A failed job gets its incident ticket (`core.tickets.open_incident`), unless it is
    an approval's check-mode preview (`core.previews`: its card says it failed). Returns the job,
    or None when it was no longer running (the reaper ended it first: nothing changes).
    Raises ValueError for a status that is not an ending.
    """
    if status not in ENDINGS:
        raise ValueError(f"{status.value} is not a final status")
    values = job_values(status=status, completed_at=now or db_now(),
                        error_message=error_message)
    if status == JobStatus.cancelled:
        # a cancel request stored who asked and why ("Cancelled by @alice: …"): that stays
        values["error_message"] = case((Job.error_message.is_(None), error_message),
                                       else_=Job.error_message)
    if recap is not None:
        values["recap"] = dict(recap)
    if started_at is not None:
        values["started_at"] = started_at
    ended = session.execute(
        update(Job).where(Job.job_id == job_id, Job.status == JobStatus.running)
        .values(values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if ended != 1:
        return None
    job = _load_by_uuid(session, job_id)
    if status == JobStatus.failed and not is_preview(session, job.id):
        open_incident(session, job)
    return job


def reap_stale(session: Session, *, now: datetime | None = None,
               grace: timedelta | float) -> list[Job]:
    """Fail running jobs whose heartbeat is older than `grace` (their worker died).

    Each gets a clear `error_message` ("worker lost: no heartbeat since …") and an incident
    ticket (not a preview: `core.previews`). They are never run again: the playbook may have
    done part of its work.
    `now` defaults to the database's time, the clock every heartbeat was written with.
    """
    now = now or db_time(session)
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
            if not is_preview(session, job.id):
                open_incident(session, job)
            reaped.append(job)
    return reaped


# requeue --------------------------------------------------------------------------------


def requeue_candidates(session: Session, *, now: datetime | None = None,
                       min_age: timedelta | float,
                       lost_after: timedelta | float | None = None,
                       broker_lost_at: datetime | None = None) -> list[Job]:
    """Pending jobs whose message must be sent (again), oldest first (see the module
    docstring): never sent for `min_age`; taken by a worker but neither claimed nor sent on
    for `lost_after` (default 4 x `min_age`); sent and not taken before `broker_lost_at`
    (when the queue last lost its data; None: not known to have). Jobs of a run that still
    awaits an approval are left alone: the decision sends the run.

    Send each candidate's run through `claim_requeue`, which lets only one clock do it.
    """
    now = now or db_time(session)
    min_age = min_age if isinstance(min_age, timedelta) else timedelta(seconds=min_age)
    if lost_after is None:
        lost_after = min_age * 4
    elif not isinstance(lost_after, timedelta):
        lost_after = timedelta(seconds=lost_after)
    lost = [
        and_(Job.enqueued_at.is_(None), Job.created_at <= now - min_age),
        and_(Job.enqueued_at.is_not(None), Job.received_at >= Job.enqueued_at,
             Job.received_at <= now - lost_after),
    ]
    if broker_lost_at is not None:
        lost.append(and_(Job.enqueued_at < broker_lost_at,
                         or_(Job.received_at.is_(None), Job.received_at < Job.enqueued_at)))
    other = aliased(Job)
    waits_for_approval = (select(other.id).where(other.run_id == Job.run_id,
                                                 other.status == JobStatus.awaiting_approval)
                          .exists())
    rows = session.execute(
        select(Job.id).where(Job.status == JobStatus.pending, or_(*lost), ~waits_for_approval)
        .order_by(Job.created_at, Job.id)
    ).scalars().all()
    return [_load(session, pk) for pk in rows]


def claim_requeue(session: Session, job: Job, *, now: datetime | None = None) -> bool:
    """Take the right to send `job`'s run again, as seen by `requeue_candidates`: True for
    exactly one caller (one conditional UPDATE on the job's `enqueued_at`), which then sends
    the message before committing; a concurrent clock gets False and sends nothing.

    Marks every pending job of the run sent (`enqueued_at`, database time); roll back when
    the send fails.
    """
    now = now or db_time(session)
    seen = (Job.enqueued_at.is_(None) if job.enqueued_at is None
            else Job.enqueued_at == job.enqueued_at)
    won = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.pending, seen)
        .values(enqueued_at=now).execution_options(synchronize_session=False)
    ).rowcount == 1
    if won:
        session.execute(
            update(Job).where(Job.run_id == job.run_id, Job.status == JobStatus.pending)
            .values(enqueued_at=now).execution_options(synchronize_session=False))
    return won


def record_requeued(session: Session, run_id: str, message_id: str) -> None:
    """Keep the id of the run's message on jobs that had none (never sent before); the
    first message id of a job is never overwritten."""
    session.execute(
        update(Job).where(Job.run_id == run_id, Job.status == JobStatus.pending,
                          Job.dramatiq_message_id.is_(None))
        .values(dramatiq_message_id=message_id[:64])
        .execution_options(synchronize_session=False))


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
