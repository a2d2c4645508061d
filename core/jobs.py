"""The job lifecycle up to the queue: launch, retry, cancel, find, and where a job's message is.

`launch` turns one run request into one run: one `jobs` row per target server, all sharing a
new `jobs.run_id` (a one-server launch is a run of one). The rows are inserted in server-id
order: inserting a job takes a shared lock on its server row (the foreign key) and the
worker's claim locks the run's server rows in id order, so the same order on both sides
never deadlocks. The worker executes the run as one Ansible run over its servers. A launch:
1. the actor must be an operator or admin (`job.launch`);
2. the playbook must be registered, active and unchanged on disk (SHA-256);
3. extra vars are validated against its declarations (`core.extra_vars`);
4. the target is resolved to active servers (`core.targets`), at most `policy.max_targets`;
5. a job on a production server waits for approval (`awaiting_approval` plus an approval
   ticket that expires after `policy.approval_ttl`) unless it runs in check mode, or the
   actor is an admin and `policy.admins_self_approve` is on; every other job is `pending`.

Repeats never create a second job:
- the same `request_key` (a Slack retry, a double submit, the same trigger) returns the jobs
  it created (`duplicate=True`); each job stores `<request_key>@<server id>`, unique;
- launching again what the same user already has pending, awaiting approval or running
  (same playbook, server, vars and check mode) answers with that job instead. When only
  some servers of a target have such a job, new jobs are made for the others and the
  running ones are listed in `LaunchResult.already_running`.

  Such a job carries `jobs.active_fingerprint` (`launch_fingerprint`), unique, cleared as
  soon as the job leaves those statuses or is asked to stop (`db.models.job_values`). The
  twin is found by that indexed column, and two identical launches at the same moment
  cannot both insert: the job is inserted in a SAVEPOINT, and the loser rolls back to it
  (nothing of it is written) and answers with the winner's job like any repeat.

Each job created (or found again) gets a `job.launch` audit row written here; denials are
audited by the caller after its rollback (see `core/__init__`). Nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from core import audit, extra_vars, permissions, playbook_files
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, UnknownJob, UnknownPlaybook, UnknownServer
from core.refs import find
from core.suggestions import closest
from core.targets import resolve_target
from db.base import utcnow
from db.models import (
    Environment,
    Job,
    JobStatus,
    Playbook,
    Role,
    Server,
    Ticket,
    TicketKind,
    TicketPriority,
    TicketStatus,
    User,
    job_values,
    new_uuid,
)
from db.session import savepoint

RETRYABLE_STATUSES = (JobStatus.failed, JobStatus.cancelled)
REQUEST_KEY_MAX = 100  # leaves room for "@<server id>" in jobs.request_key (128)


@dataclass(frozen=True)
class LaunchPolicy:
    """The settings a launch obeys.

    playbook_dir: the only directory playbooks run from (their files are re-hashed here).
    admins_self_approve: an admin's own production run needs no approval (small teams).
    approval_ttl: how long an approval request stays open.
    max_targets: the most servers one target may expand to.
    """

    playbook_dir: Path | str
    admins_self_approve: bool = False
    approval_ttl: timedelta = timedelta(hours=1)
    max_targets: int = 50


@dataclass
class LaunchResult:
    """What a launch (or retry) produced.

    jobs: the jobs created (in server-id order), or found again when `duplicate`.
    run_id: the run the created jobs share (a new one per launch or retry); when
        `duplicate`, the run of the first job found again.
    approval_tickets: the approval ticket of each job awaiting approval.
    duplicate: nothing new was created; `jobs` are the ones an earlier identical request made
        (or that are still running for the same launch).
    needs_approval: some job waits for an admin's approval.
    already_running: identical jobs of this user still in progress on some of the servers,
        not launched again (when `duplicate`, they are `jobs` themselves).
    """

    jobs: list[Job]
    run_id: str = ""
    approval_tickets: list[Ticket] = field(default_factory=list)
    duplicate: bool = False
    needs_approval: bool = False
    already_running: list[Job] = field(default_factory=list)


def launch(
    session: Session,
    actor: User,
    *,
    playbook: str,
    target: str,
    raw_vars: Mapping[str, Any],
    check_mode: bool,
    request_key: str | None,
    channel_id: str | None,
    policy: LaunchPolicy,
    request: RequestInfo | None = None,
) -> LaunchResult:
    """Create the jobs of one run request (see the module docstring for the rules).

    Raises NotAllowed, UnknownPlaybook, PlaybookChanged, InvalidVars, UnknownServer,
    InvalidInput. The caller commits, then posts and enqueues the `pending` jobs.
    """
    permissions.require(actor, permissions.JOB_LAUNCH)
    key = _normal_key(request_key)
    if key is not None:
        earlier = jobs_for_request(session, key)
        if earlier:
            return _repeat(session, actor, earlier, request, details={"request_key": key})
    book = _runnable_playbook(session, playbook, policy)
    variables = extra_vars.validate(book, raw_vars, source="chat")
    servers = resolve_target(session, target, limit=policy.max_targets)
    return _create(session, actor, book, servers, variables, check_mode=check_mode, key=key,
                   channel_id=channel_id, policy=policy, request=request, target=target)


def retry(session: Session, actor: User, job_ref: str | int, *, request_key: str | None,
          policy: LaunchPolicy, request: RequestInfo | None = None) -> LaunchResult:
    """Launch a failed or cancelled job again as a new job (`retry_of_id` set).

    Same playbook, server, vars and check mode, as the actor; the same approval rules apply
    and the vars are validated again against the playbook's current declarations.
    Raises NotAllowed, UnknownJob, InvalidState (not failed/cancelled), UnknownPlaybook,
    PlaybookChanged, InvalidVars, UnknownServer.
    """
    permissions.require(actor, permissions.JOB_RETRY)
    original = get_job(session, job_ref)
    key = _normal_key(request_key)
    if key is not None:
        earlier = jobs_for_request(session, key)
        if earlier:
            return _repeat(session, actor, earlier, request, details={"request_key": key})
    if original.status not in RETRYABLE_STATUSES:
        raise InvalidState(f"Job {short(original)} is {label(original.status)}; only failed or "
                           "cancelled jobs can be retried.")
    book = _runnable_playbook(session, original.playbook.name, policy)
    variables = extra_vars.validate(book, original.extra_vars or {}, source="retry")
    server = original.server
    if not server.is_active:
        raise UnknownServer(f"Server `{server.hostname}` is deactivated; the job cannot be "
                            "retried.")
    return _create(session, actor, book, [server], variables, check_mode=original.check_mode,
                   key=key, channel_id=original.slack_channel_id, policy=policy,
                   request=request, target=server.hostname, retry_of=original)


def cancel(session: Session, actor: User, job_ref: str | int, *, reason: str | None = None,
           request: RequestInfo | None = None) -> Job:
    """Cancel a job: at once when pending or awaiting approval (its approval request is
    closed); for a running job, `cancel_requested` is set and the worker stops it.

    Operators cancel their own jobs, admins anyone's. Raises NotAllowed, UnknownJob,
    InvalidState (already finished, or cancellation already requested).
    """
    job = get_job(session, job_ref)
    permissions.require(actor, permissions.JOB_CANCEL, owner_id=job.user_id)
    now = utcnow()
    why = f"Cancelled by @{actor.username}" + (f": {reason.strip()}" if reason and
                                                reason.strip() else "")
    previous = job.status
    if previous in (JobStatus.pending, JobStatus.awaiting_approval):
        stopped = session.execute(
            update(Job).where(Job.id == job.id, Job.status == previous)
            .values(job_values(status=JobStatus.cancelled, completed_at=now,
                               error_message=why[:2000]))
            .execution_options(synchronize_session=False)
        ).rowcount
        if stopped == 1:
            if previous == JobStatus.awaiting_approval:
                _withdraw_approval(session, job, f"Withdrawn: {why}")
            return _cancelled(session, actor, job, previous, request, "cancelled")
        _reload(session, job)  # it moved on meanwhile (claimed, approved...): decide again
        previous = job.status
    if previous == JobStatus.running:
        if job.cancel_requested:
            raise InvalidState(f"Cancellation of job {short(job)} was already requested; it "
                               "stops at the next task.")
        asked = session.execute(
            update(Job).where(Job.id == job.id, Job.status == JobStatus.running)
            .values(job_values(cancel_requested=True))
            .execution_options(synchronize_session=False)
        ).rowcount
        if asked == 1:
            return _cancelled(session, actor, job, previous, request, "cancel_requested")
        _reload(session, job)
    raise InvalidState(f"Job {short(job)} is already {label(job.status)}; there is nothing to "
                       "cancel.")


def get_job(session: Session, job_ref: str | int) -> Job:
    """The job named by its uuid, a unique prefix (6+ characters) or its numeric id.

    Raises UnknownJob, or InvalidInput for an ambiguous or too short prefix.
    """
    return find(session, Job, Job.job_id, job_ref, what="job", not_found=UnknownJob)


def mark_enqueued(session: Session, job_id: str, message_id: str) -> None:
    """Record the queue message sent for a job (and, while it is pending, when it was sent,
    so the requeuer leaves it alone)."""
    session.execute(update(Job).where(Job.job_id == job_id)
                    .values(dramatiq_message_id=message_id[:64])
                    .execution_options(synchronize_session=False))
    session.execute(update(Job).where(Job.job_id == job_id, Job.status == JobStatus.pending)
                    .values(heartbeat_at=utcnow())
                    .execution_options(synchronize_session=False))


def attach_message(session: Session, job_id: str, channel_id: str, ts: str) -> None:
    """Record where the job's Slack message is, so progress updates edit it in place."""
    session.execute(update(Job).where(Job.job_id == job_id)
                    .values(slack_channel_id=channel_id, slack_message_ts=ts)
                    .execution_options(synchronize_session=False))


def jobs_for_request(session: Session, request_key: str) -> list[Job]:
    """The jobs an earlier request with this key created, oldest first."""
    key = _normal_key(request_key)
    if key is None:
        return []
    return list(session.scalars(
        select(Job).where(Job.request_key.startswith(f"{key}@", autoescape=True))
        .order_by(Job.id)
    ).unique())


def approval_ticket(session: Session, job: Job, *, locking: bool = False) -> Ticket | None:
    """The newest approval ticket of a job, if it has one.

    `locking` reads the latest committed row (a shared-lock read), for a job another
    transaction created after this one's MariaDB snapshot.
    """
    query = (select(Ticket).where(Ticket.job_id == job.id, Ticket.kind == TicketKind.approval)
             .order_by(Ticket.id.desc()).limit(1))
    if locking:
        query = query.with_for_update(read=True)
    return session.scalars(query).unique().first()


def launch_fingerprint(user_id: int, playbook_id: int, server_id: int, check_mode: bool,
                       extra_vars: Mapping[str, Any]) -> str:
    """What makes two launches identical, as the SHA-256 hex stored in
    `jobs.active_fingerprint`: the user, playbook, server, check mode and the validated
    extra vars (canonical JSON: key order does not matter, types do).

    Migration 0003 holds a frozen copy of this function for its backfill; change both (and
    add a migration recomputing the column) if this ever changes.
    """
    canonical = json.dumps(
        {"user": user_id, "playbook": playbook_id, "server": server_id,
         "check_mode": bool(check_mode), "extra_vars": dict(extra_vars)},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def needs_approval(server: Server, actor: User, *, check_mode: bool,
                   policy: LaunchPolicy) -> bool:
    """Whether a run on `server` by `actor` must wait for another admin's approval."""
    if check_mode or server.environment != Environment.production:
        return False
    return not (policy.admins_self_approve and actor.role == Role.admin)


def short(job: Job) -> str:
    """How messages name a job: the first 8 characters of its uuid, in backticks."""
    return f"`{job.job_id[:8]}`"


def label(status: JobStatus) -> str:
    return status.value.replace("_", " ")


# internals ------------------------------------------------------------------------------


def _normal_key(request_key: str | None) -> str | None:
    """The request key as stored: long keys are hashed so `<key>@<server id>` fits."""
    key = (request_key or "").strip()
    if not key:
        return None
    if len(key) > REQUEST_KEY_MAX or "@" in key:
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _runnable_playbook(session: Session, name: str, policy: LaunchPolicy) -> Playbook:
    wanted = (name or "").strip()
    if not wanted:
        raise InvalidInput("Which playbook? Usage: `/run-playbook <playbook> <target> "
                           "[key=value ...] [--check]`.")
    book = session.scalar(select(Playbook).where(Playbook.name == wanted))
    if book is None or not book.is_active:
        names = list(session.scalars(select(Playbook.name).where(Playbook.is_active.is_(True))))
        state = "is deactivated" if book is not None else "is not registered"
        raise UnknownPlaybook(f"Playbook `{wanted}` {state}.", suggestions=closest(wanted, names))
    playbook_files.verify_unchanged(book, policy.playbook_dir)
    return book


def _repeat(session: Session, actor: User, jobs: Sequence[Job], request: RequestInfo | None,
            *, details: Mapping[str, Any], in_progress: bool = False,
            locking: bool = False) -> LaunchResult:
    """The answer to a launch that creates nothing: the jobs an earlier request with the same
    key made, or (`in_progress`) this user's identical jobs still in progress. Each is
    audited as a repeat (`job.launch`, duplicate=true). `locking`: the jobs were committed
    after this transaction's snapshot, so their approval tickets are read with a lock."""
    for job in jobs:
        audit.record(session, user=actor, action="job.launch", resource_type="job",
                     resource_id=job.job_id, request=request,
                     details={"duplicate": True, **details, "status": job.status})
    tickets = _open_approvals(session, jobs, locking=locking)
    return LaunchResult(jobs=list(jobs), run_id=jobs[0].run_id if jobs else "",
                        approval_tickets=tickets, duplicate=True,
                        needs_approval=bool(tickets),
                        already_running=list(jobs) if in_progress else [])


def _open_approvals(session: Session, jobs: Sequence[Job], *,
                    locking: bool = False) -> list[Ticket]:
    """The approval tickets of those jobs that still await approval."""
    found = (approval_ticket(session, job, locking=locking) for job in jobs
             if job.status == JobStatus.awaiting_approval)
    return [ticket for ticket in found if ticket is not None]


def job_in_progress(session: Session, fingerprint: str, *, locking: bool = False) -> Job | None:
    """The job in progress with this launch fingerprint (one lookup of a unique index).

    `locking` reads the latest committed row (a shared-lock read: MariaDB's snapshot would
    not show a job committed after this transaction began). Its playbook, server and user
    are then loaded apart, without locking their rows (a worker's claim holds the server
    row while it updates the job).
    """
    query = select(Job).where(Job.active_fingerprint == fingerprint)
    if locking:
        query = (query.options(lazyload(Job.playbook), lazyload(Job.server), lazyload(Job.user))
                 .with_for_update(read=True))
    return session.scalars(query).unique().first()


def _insert_unless_raced(session: Session, job: Job, fingerprint: str) -> Job | None:
    """Insert a new job in a SAVEPOINT. None when inserted; else the identical job that a
    concurrent launch committed first (the savepoint is rolled back: nothing of this job is
    written).

    Re-raises the IntegrityError when no such job exists (the clash was on another unique
    key, e.g. a concurrent delivery of the same request_key: the caller retries the request).
    """
    try:
        with savepoint(session):
            session.add(job)
            session.flush()
    except IntegrityError:
        winner = job_in_progress(session, fingerprint, locking=True)
        if winner is None:
            raise
        return winner
    return None


def _create(session: Session, actor: User, book: Playbook, servers: Sequence[Server],
            variables: Mapping[str, Any], *, check_mode: bool, key: str | None,
            channel_id: str | None, policy: LaunchPolicy, request: RequestInfo | None,
            target: str, retry_of: Job | None = None) -> LaunchResult:
    now = utcnow()
    run_id = new_uuid()
    created: list[Job] = []
    tickets: list[Ticket] = []
    running: list[Job] = []
    raced = False
    for server in sorted(servers, key=lambda s: s.id):  # id order: see the module docstring
        fingerprint = launch_fingerprint(actor.id, book.id, server.id, check_mode, variables)
        twin = job_in_progress(session, fingerprint)
        if twin is not None:
            running.append(twin)
            continue
        waits = needs_approval(server, actor, check_mode=check_mode, policy=policy)
        job = Job(playbook_id=book.id, server_id=server.id, user_id=actor.id,
                  status=JobStatus.awaiting_approval if waits else JobStatus.pending,
                  extra_vars=dict(variables), check_mode=check_mode,
                  slack_channel_id=channel_id,
                  request_key=f"{key}@{server.id}" if key else None,
                  retry_of_id=retry_of.id if retry_of else None, created_at=now,
                  active_fingerprint=fingerprint, run_id=run_id)
        winner = _insert_unless_raced(session, job, fingerprint)
        if winner is not None:
            running.append(winner)
            raced = True
            continue
        session.refresh(job)  # load playbook/server/user for the caller's messages
        ticket = _approval_request(session, job, actor, policy, now) if waits else None
        if ticket is not None:
            tickets.append(ticket)
        details: dict[str, Any] = {
            "playbook": book.name, "server": server.hostname, "target": target,
            "environment": server.environment, "check_mode": check_mode,
            "extra_vars": dict(variables), "status": job.status, "file_hash": book.file_hash,
        }
        if key:
            details["request_key"] = key
        if retry_of is not None:
            details["retry_of"] = retry_of.job_id
        if ticket is not None:
            details["approval_ticket"] = ticket.ticket_id
        audit.record(session, user=actor, action="job.retry" if retry_of else "job.launch",
                     resource_type="job", resource_id=job.job_id, details=details,
                     request=request)
        created.append(job)
    if not created:
        return _repeat(session, actor, running, request, in_progress=True, locking=raced,
                       details={"in_progress": True, "target": target})
    return LaunchResult(jobs=created, run_id=run_id, approval_tickets=tickets, duplicate=False,
                        needs_approval=bool(tickets), already_running=running)


def _approval_request(session: Session, job: Job, actor: User, policy: LaunchPolicy,
                      now: Any) -> Ticket:
    shown = audit.sanitize(job.extra_vars or {})
    vars_text = ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "no extra vars"
    ticket = Ticket(
        kind=TicketKind.approval, job_id=job.id, created_by=actor.id,
        title=f"Approve {job.playbook.name} on {job.server.hostname} for @{actor.username}"[:255],
        description=(f"@{actor.username} asks to run `{job.playbook.name}` on "
                     f"`{job.server.hostname}` ({job.server.environment.value}) with "
                     f"{vars_text}. An admin other than the requester must approve it."),
        status=TicketStatus.open, priority=TicketPriority.high,
        expires_at=now + policy.approval_ttl, created_at=now,
    )
    session.add(ticket)
    session.flush()
    return ticket


def _withdraw_approval(session: Session, job: Job, note: str) -> None:
    session.execute(
        update(Ticket).where(Ticket.job_id == job.id, Ticket.kind == TicketKind.approval,
                             Ticket.status == TicketStatus.open)
        .values(status=TicketStatus.closed, resolution_note=note[:2000], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _cancelled(session: Session, actor: User, job: Job, previous: JobStatus,
               request: RequestInfo | None, outcome: str) -> Job:
    _reload(session, job)
    audit.record(session, user=actor, action="job.cancel", resource_type="job",
                 resource_id=job.job_id, request=request,
                 details={"previous_status": previous, "result": outcome,
                          "owner": job.user.username})
    return job


def _reload(session: Session, job: Job) -> None:
    """Read the job again, as last committed (a locking read: on MariaDB a plain read would
    return this transaction's older snapshot)."""
    session.refresh(job, with_for_update={"read": True})
