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
   ticket that expires after `policy.approval_ttl`) — a check-mode run too, since check
   mode is not read-only (`check_mode: false` tasks really run), unless the playbook's
   sidecar declares it `check_safe` — or the actor is an admin and
   `policy.admins_self_approve` is on; every other job is `pending`.
6. a production job awaiting approval of a check-safe playbook, not itself a check run,
   gets a **preview**: a check-mode job of the same playbook, variables and server, as the
   requester, `pending` (a check run of a check-safe playbook needs no approval), linked
   on the approval ticket (`tickets.preview_job_id`). The previews of one launch are one
   run of their own (`LaunchResult.previews`), which the caller enqueues like any pending
   run. A preview carries no `active_fingerprint` and no `request_key`, so it never
   answers, blocks or deduplicates a launch, and no channel: the worker posts no message
   of its own for it, and redraws the approval card with its result (`core.previews`).

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

Runs after launch:
- the caller enqueues ONE queue message per run, for `startable_job(run)`, once no job of
  the run awaits approval, and records it on every pending job (`mark_run_enqueued`);
- `cancel` of a running job stops the whole run (Ansible runs its servers together and can
  only stop them all): every running job of the run gets `cancel_requested`. A pending job
  (its run not started on it) is cancelled alone; `cancel_run` cancels all of a run;
- `retry_failed` launches, as a new run, the same playbook, variables and check mode on the
  servers of a finished run whose jobs failed (unreachable hosts included).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from core import audit, extra_vars, freezes, permissions, playbook_files, request_digest
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, UnknownJob, UnknownPlaybook, UnknownServer
from core.refs import find
from core.suggestions import closest
from core.targets import resolve_target
from db.base import utcnow
from db.clock import db_now
from db.locking import latest
from db.models import (
    ACTIVE_JOB_STATUSES,
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
    production_approvers: how many distinct admins, none the requester, must approve a
        production run (`PLAYBOT_PRODUCTION_APPROVERS`; stored on each request at launch).
    """

    playbook_dir: Path | str
    admins_self_approve: bool = False
    approval_ttl: timedelta = timedelta(hours=1)
    max_targets: int = 50
    production_approvers: int = 1


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
    previews: list[Job] = field(default_factory=list)


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
    break_glass: str | None = None,
    now: datetime | None = None,
    with_previews: bool = True,
) -> LaunchResult:
    """Create the jobs of one run request (see the module docstring for the rules).

    `with_previews=False` makes no check-mode preview for a request that needs an approval (a
    schedule's run, decided at once by its up-front approval: nobody would read it).

    A change freeze in force (`core.freezes`, at `now`: the clock passes the fire time of a
    scheduled run) refuses the launch with `Frozen`, unless `break_glass` gives a reason:
    then each job on a frozen server waits for two admins other than the requester.

    Raises NotAllowed, Frozen, UnknownPlaybook, PlaybookChanged, InvalidVars,
    UnknownServer, InvalidInput. The caller commits, then posts and enqueues the `pending`
    jobs.
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
    frozen = freezes.check_servers(session, servers, break_glass=break_glass, now=now)
    result = _create(session, actor, book, servers, variables, check_mode=check_mode, key=key,
                     channel_id=channel_id, policy=policy, request=request, target=target,
                     with_previews=with_previews)
    if frozen:
        freezes.require_two_admins(session, actor, result, frozen, str(break_glass),
                                   policy=policy, request=request)
    return result


def retry(session: Session, actor: User, job_ref: str | int, *, request_key: str | None,
          policy: LaunchPolicy, request: RequestInfo | None = None) -> LaunchResult:
    """Launch a failed or cancelled job again as a new job (`retry_of_id` set).

    Same playbook, server, vars and check mode, as the actor; the same approval rules apply
    and the vars are validated again against the playbook's current declarations. A job
    can be retried any number of times: `request_key` names the click (a Slack resend of
    the same click finds its retry), and while a retry of the job is still in progress
    (`retry_in_progress`, by anyone) another Retry answers with it (`duplicate`,
    `already_running`); once it has ended, a new Retry makes a new job.
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
    twin = retry_in_progress(session, original)
    if twin is not None:
        return _repeat(session, actor, [twin], request, in_progress=True,
                       details={"in_progress": True, "retry_of": original.job_id})
    book = _runnable_playbook(session, original.playbook.name, policy)
    variables = extra_vars.validate(book, original.extra_vars or {}, source="retry")
    server = original.server
    if not server.is_active:
        raise UnknownServer(f"Server `{server.hostname}` is deactivated; the job cannot be "
                            "retried.")
    freezes.check_servers(session, [server], break_glass=None)
    return _create(session, actor, book, [server], variables, check_mode=original.check_mode,
                   key=key, channel_id=original.slack_channel_id, policy=policy,
                   request=request, target=server.hostname, retry_of={server.id: original})


def cancel(session: Session, actor: User, job_ref: str | int, *, reason: str | None = None,
           request: RequestInfo | None = None) -> Job:
    """Cancel a job: at once when pending or awaiting approval (its approval request is
    closed; the rest of its run goes on without it). A running job stops its whole run:
    Ansible runs a run's servers together and can only stop them all, so it and every
    other job of its run that has not finished is stopped as `cancel_run` does.

    Operators cancel their own jobs, admins anyone's. Each job stopped is audited
    (`job.cancel`). Raises NotAllowed, UnknownJob, InvalidState (already finished, or
    cancellation already requested).
    """
    job = get_job(session, job_ref)
    permissions.require(actor, permissions.JOB_CANCEL, owner_id=job.user_id)
    if job.status == JobStatus.running and job.cancel_requested:
        raise InvalidState(f"Cancellation of job {short(job)} was already requested; it "
                           "stops at the next task.")
    now = utcnow()
    why = _why(actor, reason)
    if not job.status.is_final:
        lock_run_rows(session, job.run_id)
        won = _stop(session, actor, job, why, now, request, waiting_only=True)
        if won is None:  # running (or it started meanwhile): the whole run stops
            for member in _by_id(session, [j.id for j in run_jobs(session, job.run_id)]):
                stopped = _stop(session, actor, member, why, now, request, run=job.run_id)
                if member.id == job.id:
                    won = stopped
        _reload(session, job)
        if won is not None:
            return job
    if job.status == JobStatus.running and job.cancel_requested:
        raise InvalidState(f"Cancellation of job {short(job)} was already requested; it "
                           "stops at the next task.")
    raise InvalidState(f"Job {short(job)} is already {label(job.status)}; there is nothing to "
                       "cancel.")


def cancel_run(session: Session, actor: User, run_ref: str, *, reason: str | None = None,
               request: RequestInfo | None = None) -> list[Job]:
    """Cancel every job of a run that has not finished: pending or awaiting approval ones at
    once, running ones through `cancel_requested` (the worker stops the run). Each job is
    audited (`job.cancel`). Returns the jobs it stopped (possibly none of the running ones
    if the run ended meanwhile).

    Raises NotAllowed (an operator's run of someone else), UnknownJob, InvalidState (the run
    has ended, or its stop was already requested).
    """
    jobs = get_run(session, run_ref)
    permissions.require(actor, permissions.JOB_CANCEL, owner_id=jobs[0].user_id)
    now = utcnow()
    why = _why(actor, reason)
    stopped = [job for job in _by_id(session, [j.id for j in jobs])
               if _stop(session, actor, job, why, now, request, run=job.run_id) is not None]
    if not stopped:
        asked = any(j.status == JobStatus.running for j in jobs)
        raise InvalidState(f"Run {short_run(jobs[0])} is " + (
            "already stopping; it ends at the next task." if asked else
            "over; there is nothing to cancel."))
    return stopped


def run_jobs(session: Session, run_id: str) -> list[Job]:
    """Every job of a run, in server-id order (the order they were inserted in), as this
    transaction sees them now (rows already in the session are read again)."""
    return list(session.scalars(
        select(Job).where(Job.run_id == run_id).order_by(Job.server_id, Job.id)
        .execution_options(populate_existing=True)).unique())


def get_run(session: Session, ref: str | int) -> list[Job]:
    """The jobs of the run named by one of its job ids (as `get_job` takes them) or by its
    run id (the full uuid or a unique prefix of 6+ characters).

    Raises UnknownJob, InvalidInput (ambiguous or too short).
    """
    try:
        return run_jobs(session, get_job(session, ref).run_id)
    except UnknownJob:
        text = str(ref).strip().lower()
        if len(text) < 6:
            raise
        runs = list(session.scalars(
            select(Job.run_id).where(Job.run_id.startswith(text, autoescape=True))
            .distinct().limit(2)))
        if not runs:
            raise
        if len(runs) > 1:
            raise InvalidInput(f"`{ref}` matches more than one run; give more characters."
                               ) from None
        return run_jobs(session, runs[0])


def run_sizes(session: Session, run_ids: Iterable[str]) -> dict[str, int]:
    """How many jobs (servers) each of these runs has."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    rows = session.execute(select(Job.run_id, func.count()).where(Job.run_id.in_(wanted))
                           .group_by(Job.run_id))
    return {run_id: int(count) for run_id, count in rows}


def startable_job(session: Session, run_id: str) -> Job | None:
    """The job to send to the queue for a run (the worker runs every pending job of the run
    from it): its first pending job, once no job of the run awaits approval; else None."""
    jobs = run_jobs(session, run_id)
    if any(j.status == JobStatus.awaiting_approval for j in jobs):
        return None
    return next((j for j in jobs if j.status == JobStatus.pending), None)


def mark_run_enqueued(session: Session, run_id: str, message_id: str) -> None:
    """Record the queue message sent for a run on every pending job of it, and when it was
    sent (`enqueued_at`, database time: the requeuer leaves a sent message alone). A worker
    quick enough to take the message before this is recorded has set `received_at`; the
    send is then dated to that receipt, so the message counts as delivered."""
    session.execute(update(Job).where(Job.run_id == run_id, Job.status == JobStatus.pending)
                    .values(dramatiq_message_id=message_id[:64],
                            enqueued_at=case((Job.received_at.is_(None), db_now()),
                                             else_=Job.received_at))
                    .execution_options(synchronize_session=False))


def retry_failed(session: Session, actor: User, run_ref: str, *, request_key: str | None,
                 policy: LaunchPolicy, request: RequestInfo | None = None) -> LaunchResult:
    """Launch again, as a new run, the servers of a finished run whose jobs failed or were
    unreachable ("relaunch on failed hosts"): same playbook, variables (validated again)
    and check mode, as the actor; each new job's `retry_of_id` is the failed job; the same
    approval and dedup rules as a launch (the same `request_key` finds the first retry). A
    failed job whose retry is still in progress (`retry_in_progress`) is not launched again:
    that retry is listed in `already_running` (all of them: `duplicate`).

    Raises NotAllowed, UnknownJob, InvalidState (the run is still in progress, or none of
    its jobs failed), UnknownPlaybook, PlaybookChanged, InvalidVars, UnknownServer (a
    failed server was deactivated since).
    """
    permissions.require(actor, permissions.JOB_RETRY)
    jobs = get_run(session, run_ref)
    key = _normal_key(request_key)
    if key is not None:
        earlier = jobs_for_request(session, key)
        if earlier:
            return _repeat(session, actor, earlier, request, details={"request_key": key})
    first = jobs[0]
    if any(not j.status.is_final for j in jobs):
        raise InvalidState(f"Run {short_run(first)} is still in progress; retry its failed "
                           "hosts once it has ended.")
    failed = [j for j in jobs if j.status == JobStatus.failed]
    if not failed:
        raise InvalidState(f"No server of run {short_run(first)} failed; there is nothing to "
                           "retry.")
    gone = [j.server.hostname for j in failed if not j.server.is_active]
    if gone:
        raise UnknownServer(f"Server {', '.join(f'`{h}`' for h in gone)} is deactivated; "
                            "retry the other failed hosts one by one with their Retry button.")
    retrying = [twin for j in failed if (twin := retry_in_progress(session, j)) is not None]
    failed = [j for j in failed if j.id not in {t.retry_of_id for t in retrying}]
    if not failed:
        return _repeat(session, actor, retrying, request, in_progress=True,
                       details={"in_progress": True, "retry_of_run": first.run_id})
    book = _runnable_playbook(session, first.playbook.name, policy)
    variables = extra_vars.validate(book, first.extra_vars or {}, source="retry")
    hosts = [j.server.hostname for j in failed]
    freezes.check_servers(session, [j.server for j in failed], break_glass=None)
    result = _create(session, actor, book, [j.server for j in failed], variables,
                     check_mode=first.check_mode, key=key, channel_id=first.slack_channel_id,
                     policy=policy, request=request,
                     target=f"failed hosts of run {first.run_id[:8]}: {', '.join(hosts)}",
                     retry_of={j.server_id: j for j in failed})
    result.already_running = [*retrying, *result.already_running]
    return result


def retry_in_progress(session: Session, original: Job) -> Job | None:
    """The newest retry of `original`, by anyone, still pending, awaiting approval or
    running (and not being stopped), if there is one: a second Retry answers with it.

    Read in the caller's transaction: two Retry clicks by two users in the very same
    instant may both launch (the second run then waits for the server); the same user's
    are one job whatever the timing (the unique `active_fingerprint`)."""
    return session.scalars(
        select(Job).where(Job.retry_of_id == original.id,
                          Job.status.in_(list(ACTIVE_JOB_STATUSES)),
                          Job.cancel_requested.is_(False))
        .order_by(Job.id.desc()).limit(1)).unique().first()


def short_run(job: Job) -> str:
    """How messages name a run: the first 8 characters of its uuid, in backticks."""
    return f"`{job.run_id[:8]}`"


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
                    .values(enqueued_at=case((Job.received_at.is_(None), db_now()),
                                             else_=Job.received_at))
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
    transaction created after this one's MariaDB snapshot; only the ticket row is locked,
    its job, server and users load after it without locks (see `db.locking`).
    """
    query = (select(Ticket).where(Ticket.job_id == job.id, Ticket.kind == TicketKind.approval)
             .order_by(Ticket.id.desc()).limit(1))
    if locking:
        query = query.options(lazyload("*")).with_for_update(read=True)
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
                   policy: LaunchPolicy, check_safe: bool = False) -> bool:
    """Whether a run on `server` by `actor` must wait for another admin's approval.

    Check mode alone exempts nothing: tasks marked `check_mode: false` run for real under
    `--check`. Only a check run of a playbook whose sidecar declares `check_safe: true`
    (its owner's promise that a check run changes nothing) needs no approval."""
    if server.environment != Environment.production:
        return False
    if check_mode and check_safe:
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
            target: str, retry_of: Mapping[int, Job] | None = None,
            with_previews: bool = True) -> LaunchResult:
    """Insert the jobs of one new run (see the module docstring). retry_of: the job each
    server's new job retries, by server id (a retry)."""
    now = utcnow()
    run_id = new_uuid()
    created: list[Job] = []
    tickets: list[Ticket] = []
    running: list[Job] = []
    previews: list[Job] = []
    preview_run = new_uuid()
    raced = False
    for server in sorted(servers, key=lambda s: s.id):  # id order: see the module docstring
        fingerprint = launch_fingerprint(actor.id, book.id, server.id, check_mode, variables)
        twin = job_in_progress(session, fingerprint)
        if twin is not None:
            running.append(twin)
            continue
        waits = needs_approval(server, actor, check_mode=check_mode, policy=policy,
                               check_safe=bool(book.check_safe))
        original = retry_of.get(server.id) if retry_of else None
        job = Job(playbook_id=book.id, server_id=server.id, user_id=actor.id,
                  status=JobStatus.awaiting_approval if waits else JobStatus.pending,
                  extra_vars=dict(variables), check_mode=check_mode,
                  slack_channel_id=channel_id,
                  request_key=f"{key}@{server.id}" if key else None,
                  retry_of_id=original.id if original else None, created_at=now,
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
            if with_previews and book.check_safe and not check_mode:
                preview = _preview(session, job, preview_run, now)
                ticket.preview_job_id = preview.id
                previews.append(preview)
        details: dict[str, Any] = {
            "playbook": book.name, "server": server.hostname, "target": target,
            "environment": server.environment, "check_mode": check_mode,
            "extra_vars": dict(variables), "status": job.status, "file_hash": book.file_hash,
        }
        if key:
            details["request_key"] = key
        if original is not None:
            details["retry_of"] = original.job_id
        if ticket is not None:
            details["approval_ticket"] = ticket.ticket_id
        if ticket is not None and ticket.preview_job_id is not None:
            details["preview_job"] = previews[-1].job_id
        audit.record(session, user=actor, action="job.retry" if original else "job.launch",
                     resource_type="job", resource_id=job.job_id, details=details,
                     request=request)
        created.append(job)
    if not created:
        return _repeat(session, actor, running, request, in_progress=True, locking=raced,
                       details={"in_progress": True, "target": target})
    if previews:
        session.flush()
    return LaunchResult(jobs=created, run_id=run_id, approval_tickets=tickets, duplicate=False,
                        needs_approval=bool(tickets), already_running=running,
                        previews=previews)


def _preview(session: Session, job: Job, run_id: str, now: Any) -> Job:
    """The check-mode preview of a job awaiting approval (module docstring, step 6)."""
    preview = Job(playbook_id=job.playbook_id, server_id=job.server_id, user_id=job.user_id,
                  status=JobStatus.pending, extra_vars=dict(job.extra_vars or {}),
                  check_mode=True, created_at=now, run_id=run_id)
    session.add(preview)
    session.flush()
    session.refresh(preview)
    return preview


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
        request_digest=request_digest.digest(job),
        approvals_needed=policy.production_approvers if policy.production_approvers > 1
        else None,
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


def _why(actor: User, reason: str | None) -> str:
    text = (reason or "").strip()
    return f"Cancelled by @{actor.username}" + (f": {text}" if text else "")


def lock_run_rows(session: Session, run_id: str) -> None:
    """Lock every job row of a run before changing any of them or their tickets: by
    primary key in id order, the order a worker's claim takes them in (docs/database.md,
    "Lock order"). A cancel that first changed the job it names and then the rest of its
    run deadlocked with a claim holding the run's lower rows; an approval that changed a
    ticket before its job deadlocked with a cancel doing the reverse. By primary key, not
    by `run_id`: a range on that index would also lock the gaps beside it, where other
    launches insert their jobs."""
    lock_job_rows(session, session.execute(
        select(Job.id).where(Job.run_id == run_id)).scalars().all())


def lock_job_rows(session: Session, ids: Sequence[int]) -> None:
    """Lock these job rows (by primary key, in id order), and nothing else."""
    if ids:
        session.execute(select(Job.id).where(Job.id.in_(sorted(ids))).order_by(Job.id)
                        .with_for_update())


def _by_id(session: Session, ids: Sequence[int]) -> list[Job]:
    """These jobs, in id order: a run's rows are always changed in that order."""
    return [job for job in (session.get(Job, pk) for pk in sorted(ids)) if job is not None]


def _stop(session: Session, actor: User, job: Job, why: str, now: Any,
          request: RequestInfo | None, *, run: str | None = None,
          waiting_only: bool = False) -> JobStatus | None:
    """Stop one job as its latest committed status allows, by conditional UPDATEs (which
    read the current row, whatever this transaction's snapshot says): cancel it when
    pending or awaiting approval, else ask the worker to stop it when running (not with
    `waiting_only`). Audited when it won. Returns the status it was stopped from, or None
    when there was nothing to stop."""
    for previous in (JobStatus.pending, JobStatus.awaiting_approval):
        won = session.execute(
            update(Job).where(Job.id == job.id, Job.status == previous)
            .values(job_values(status=JobStatus.cancelled, completed_at=now,
                               error_message=why[:2000]))
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            if previous == JobStatus.awaiting_approval:
                _withdraw_approval(session, job, f"Withdrawn: {why}")
            _audit_stop(session, actor, job, previous, "cancelled", request, run)
            return previous
    if waiting_only:
        return None
    asked = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.running,
                          Job.cancel_requested.is_(False))
        # who asked, in their words: kept as the ending when the worker stops the run
        .values(job_values(cancel_requested=True, error_message=why[:2000]))
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not asked:
        return None
    _audit_stop(session, actor, job, JobStatus.running, "cancel_requested", request, run)
    return JobStatus.running


def _audit_stop(session: Session, actor: User, job: Job, previous: JobStatus, outcome: str,
                request: RequestInfo | None, run: str | None) -> None:
    details: dict[str, Any] = {"previous_status": previous, "result": outcome,
                               "owner": job.user.username}
    if run is not None:
        details["run"] = run
    audit.record(session, user=actor, action="job.cancel", resource_type="job",
                 resource_id=job.job_id, request=request, details=details)


def _reload(session: Session, job: Job) -> None:
    """Read the job again, as last committed (a locking read: on MariaDB a plain read would
    return this transaction's older snapshot). Only the job's row is locked, not its
    server's (`db.locking`): a claim holds that one while it updates the run's jobs."""
    latest(session, job)
