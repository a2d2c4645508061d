"""Approval of production runs: four-eyes, one decision, and expiry.

A production job waits in `awaiting_approval` with an open approval ticket (kind
`approval`, see `core.jobs.launch`). An admin who is not the requester approves it (the job
becomes `pending` and the caller enqueues it) or rejects it (the job is cancelled). The
`admins_self_approve` policy lets an admin approve their own request (small teams). A
rejection always carries a reason (InvalidInput without one, checked after the request is
found open, so a late click still hears what was decided); the job's error message and the
card say "Rejected by @x: reason".

A request may need several distinct admins (`LaunchPolicy.production_approvers`, stored on
the ticket as `approvals_needed`): each approval before the last is recorded in
`tickets.approvals` (the ticket stays open, the job waits; the same admin twice is refused),
the last one decides. An approval binds to the exact request: the digest stored at launch
(`core.request_digest`) is computed again before approving; a difference refuses the
approval as void, and `void_changed_requests` then closes the request and cancels its job.

Only one decision wins: each is a conditional UPDATE on the still-open ticket, so a double
click or two admins at once get one success and one InvalidState naming the decision made.
A decision racing a worker's claim never deadlocks: the ticket and job are re-read with a
lock on their own rows only (`db.locking.latest`), never on the job's server row, which the
claim holds while it updates jobs (docs/database.md, "Locking reads and lock order").
Requests expire after the policy's TTL: `expire_overdue` (run by the clock) closes them and
cancels their jobs; approving an expired request is refused.

How a decided ticket reads (`decision`):
    approved   status resolved, assignee = the approver, note "Approved by @x"
    rejected   status closed,   assignee = the admin who rejected, note = the reason
    expired    status closed,   no assignee, note "Expired: ..."
    withdrawn  status closed,   no assignee, note "Withdrawn: ..." (requester cancelled the job)
    void       status closed,   no assignee, note "Approval void: ..." (the request changed)
Each decision writes an audit row (`approval.approve`, `approval.reject`, `approval.expire`).

A run with several production servers has one approval ticket per production job, but one
decision in chat: `approve_run` / `reject_run` decide every open approval ticket of the
run at once (each audited; all or none: if one was decided meanwhile, nothing is). The
run starts once none of its jobs awaits approval (`core.jobs.startable_job`): after an
approval, and after a rejection or an expiry too: the run's other jobs then start without
the rejected ones. The clock's `expire_overdue` returns the expired tickets; their runs
that can start now are `runs_to_start(session, tickets)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit, freezes, permissions, request_digest
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, NotAllowed, PlaybotError
from core.jobs import LaunchPolicy, lock_job_rows, lock_run_rows, startable_job
from core.tickets import get_ticket, short
from db.base import utcnow
from db.locking import latest
from db.models import Job, JobStatus, Ticket, TicketKind, TicketStatus, User, job_values

Decision = Literal["pending", "approved", "rejected", "expired", "withdrawn", "void"]
# How a cancelled job's error_message begins when its approval was refused or ran out: lists
# say "rejected" / "expired" for these rather than "cancelled".
REJECTED_PREFIX = "Rejected by "
EXPIRED_PREFIX = "Approval request expired"
MAX_REASON = 1000


@dataclass
class RunDecision:
    """What one decision on a run's approval did.

    run_id: the run. tickets: the approval tickets decided (oldest first), jobs: their jobs
    (now pending, or cancelled when rejected). startable: the job to enqueue for the run
    now that none of its jobs awaits approval (None while some still does, or if nothing
    of the run is left to run). more_needed: approvals still needed from other admins
    (`PLAYBOT_PRODUCTION_APPROVERS` > 1) before the run is released; 0 once released.
    """

    run_id: str
    tickets: list[Ticket] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    startable: Job | None = None
    more_needed: int = 0


def approve_run(session: Session, actor: User, ticket_ref: str | int, *,
                policy: LaunchPolicy, request: RequestInfo | None = None) -> RunDecision:
    """Approve every open approval request of the run `ticket_ref` belongs to: its
    production jobs move `awaiting_approval` → `pending` (each decision audited).

    The caller commits, then enqueues `startable`. Raises as `approve`; an expired request
    of the run expires them all (their jobs cancelled) and the approval is refused.
    """
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    ticket = _open_request(session, ticket_ref)
    job = _job_of(ticket)
    if job.user_id == actor.id and (not policy.admins_self_approve
                                    or freezes.is_break_glass(ticket)):
        raise NotAllowed("You requested this run, so another admin must approve it "
                         "(four-eyes rule).")
    lock_run_rows(session, job.run_id)  # jobs before their tickets (core.jobs)
    now = utcnow()
    tickets = open_run_requests(session, job.run_id)
    if any(_is_expired(t, now) for t in tickets):
        for overdue in tickets:
            _expire(session, overdue, now)
        raise InvalidState(f"Approval request {short(ticket)} expired at "
                           f"{_when(ticket.expires_at)}; the job was cancelled. Run it again "
                           "to ask for a new approval.")
    changed = [t for t in tickets if request_digest.changed(t)]
    if changed:
        raise InvalidState(f"Approval request {short(ticket)} is void: "
                           f"{request_digest.what_changed(changed[0])} changed since it was "
                           "requested. Run it again to ask for a new approval.")
    decided = RunDecision(run_id=job.run_id)
    seen: set[int | None] = set()  # a break-glass job has two tickets: one decision each
    for each in tickets:
        if each.job_id in seen:
            continue
        seen.add(each.job_id)
        decided.tickets.append(each)
        decided.jobs.append(_approve(session, actor, each, now, request, run=job.run_id))
        decided.more_needed = max(decided.more_needed, more_needed(each))
    decided.startable = startable_job(session, job.run_id)
    return decided


def void_changed_requests(session: Session, ticket_ref: str | int) -> list[Ticket]:
    """Close the open approval requests of the run `ticket_ref` belongs to whose request
    changed since launch (`core.request_digest`), cancelling their jobs ("Approval void: the
    playbook changed since it was requested"), each audited `approval.void`. What an
    approval refused as void leaves to do (its own transaction rolled back)."""
    try:
        ticket = get_ticket(session, ticket_ref)
    except PlaybotError:
        return []
    if ticket.job is None:
        return []
    lock_run_rows(session, ticket.job.run_id)  # jobs before their tickets (core.jobs)
    now = utcnow()
    done: list[tuple[Ticket, str]] = []
    for each in open_run_requests(session, ticket.job.run_id):
        if not request_digest.changed(each):
            continue
        why = request_digest.void_reason(each, since="requested")
        won = session.execute(
            update(Ticket).where(Ticket.id == each.id, Ticket.status == TicketStatus.open)
            .values(status=TicketStatus.closed, updated_at=now, resolution_note=why)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won != 1:
            continue
        session.execute(
            update(Job).where(Job.id == each.job_id, Job.status == JobStatus.awaiting_approval)
            .values(job_values(status=JobStatus.cancelled, completed_at=now, error_message=why))
            .execution_options(synchronize_session=False)
        )
        session.refresh(each)
        if each.job is not None:
            session.refresh(each.job)
        done.append((each, why))
    for each, why in done:  # audited last: the chain head stays locked until commit
        audit.record(session, user=None, action="approval.void", resource_type="ticket",
                     resource_id=each.ticket_id,
                     details={"job": each.job.job_id if each.job else None, "reason": why,
                              "when": "approval"})
    return [each for each, _ in done]


def more_needed(ticket: Ticket) -> int:
    """How many more admins must approve this request (0 once it is decided)."""
    if ticket.status != TicketStatus.open:
        return 0
    return max(0, (ticket.approvals_needed or 1) - len(ticket.approvals or []))


def approvers(ticket: Ticket) -> list[str]:
    """The usernames of the admins who approved this request so far, oldest first."""
    return [str(a.get("username")) for a in ticket.approvals or []]


def reject_run(session: Session, actor: User, ticket_ref: str | int, *,
               reason: str | None = None, request: RequestInfo | None = None) -> RunDecision:
    """Reject every open approval request of the run `ticket_ref` belongs to: those jobs
    are cancelled ("Rejected by @x: reason", each audited); the rest of the run (its
    servers that needed no approval) starts without them: the caller commits, then
    enqueues `startable`. Raises as `reject`."""
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    ticket = _open_request(session, ticket_ref)
    text = _reason(reason)
    job = _job_of(ticket)
    lock_run_rows(session, job.run_id)  # jobs before their tickets (core.jobs)
    now = utcnow()
    decided = RunDecision(run_id=job.run_id)
    for each in open_run_requests(session, job.run_id):
        decided.tickets.append(each)
        decided.jobs.append(_reject(session, actor, each, text, now, request,
                                    run=job.run_id))
    decided.startable = startable_job(session, job.run_id)
    return decided


def open_run_requests(session: Session, run_id: str) -> list[Ticket]:
    """The open approval tickets of a run's jobs, in job-id order."""
    return list(session.scalars(
        select(Ticket).join(Job, Ticket.job_id == Job.id)
        .where(Job.run_id == run_id, Ticket.kind == TicketKind.approval,
               Ticket.status == TicketStatus.open)
        .order_by(Job.id, Ticket.id)
    ).unique())


def run_requests(session: Session, run_id: str) -> list[Ticket]:
    """Every approval ticket of a run's jobs (the newest of each job), in job-id order: what
    the run's approval card draws."""
    tickets = session.scalars(
        select(Ticket).join(Job, Ticket.job_id == Job.id)
        .where(Job.run_id == run_id, Ticket.kind == TicketKind.approval)
        .order_by(Job.id, Ticket.id.desc())
    ).unique()
    newest: dict[int | None, Ticket] = {}
    for ticket in tickets:
        newest.setdefault(ticket.job_id, ticket)
    return list(newest.values())


def runs_to_start(session: Session, tickets: Sequence[Ticket]) -> list[Job]:
    """For decided (e.g. expired) approval tickets: the job to enqueue for each of their
    runs that can start now (`core.jobs.startable_job`), one per run."""
    seen: set[str] = set()
    found: list[Job] = []
    for ticket in tickets:
        if ticket.job is None or ticket.job.run_id in seen:
            continue
        seen.add(ticket.job.run_id)
        job = startable_job(session, ticket.job.run_id)
        if job is not None:
            found.append(job)
    return found


def approve(session: Session, actor: User, ticket_ref: str | int, *, policy: LaunchPolicy,
            request: RequestInfo | None = None) -> Job:
    """Approve one production job: it moves `awaiting_approval` → `pending`.

    The caller commits, then enqueues the job. Raises NotAllowed (not an admin; the
    requester without `admins_self_approve`), UnknownTicket, InvalidState (not an approval
    request, already decided, expired).
    """
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    ticket = _open_request(session, ticket_ref)
    job = _job_of(ticket)
    if job.user_id == actor.id and (not policy.admins_self_approve
                                    or freezes.is_break_glass(ticket)):
        raise NotAllowed("You requested this run, so another admin must approve it "
                         "(four-eyes rule).")
    now = utcnow()
    if _is_expired(ticket, now):
        _expire(session, ticket, now)
        raise InvalidState(f"Approval request {short(ticket)} expired at "
                           f"{_when(ticket.expires_at)}; the job was cancelled. Run it again "
                           "to ask for a new approval.")
    if request_digest.changed(ticket):
        raise InvalidState(f"Approval request {short(ticket)} is void: "
                           f"{request_digest.what_changed(ticket)} changed since it was "
                           "requested. Run it again to ask for a new approval.")
    return _approve(session, actor, ticket, now, request)


def reject(session: Session, actor: User, ticket_ref: str | int, *, reason: str | None = None,
           request: RequestInfo | None = None) -> Job:
    """Reject one production job: it is cancelled ("Rejected by @x: reason").

    Any admin may reject, the requester included (that withdraws the request). Raises
    NotAllowed, UnknownTicket, InvalidInput (reason too long), InvalidState (not an
    approval request, already decided).
    """
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    ticket = _open_request(session, ticket_ref)
    text = _reason(reason)
    return _reject(session, actor, ticket, text, utcnow(), request)


def _reason(reason: str | None) -> str:
    """A rejection's reason: required (the requester and the channel are told why)."""
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("A rejection needs a reason: say why, so the requester knows "
                           "what to change.")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"The reason is too long (at most {MAX_REASON} characters).")
    return text


def _approve(session: Session, actor: User, ticket: Ticket, now: datetime,
             request: RequestInfo | None, *, run: str | None = None) -> Job:
    """Decide one open request as approved and release its job (audited). A break-glass
    job (`core.freezes`) is released by its second approval, from another admin."""
    job = _job_of(ticket)
    lock_job_rows(session, [job.id])  # before its ticket (core.jobs.lock_run_rows)
    waits = freezes.is_break_glass(ticket) and freezes.second_approval_needed(
        session, actor, ticket)
    given = _count_approval(session, actor, ticket, now)
    if given is not None:  # recorded; the request waits for more admins
        audit.record(session, user=actor, action="approval.approve", resource_type="ticket",
                     resource_id=ticket.ticket_id, request=request,
                     details={"job": job.job_id, "requester": job.user.username,
                              "approvals": len(given),
                              "approvals_needed": ticket.approvals_needed,
                              "waiting_for": f"{more_needed(ticket)} more admin(s)",
                              **({"run": run} if run is not None else {})})
        return job
    names = [*approvers(ticket), actor.username]
    _decide(session, ticket, status=TicketStatus.resolved, assignee_id=actor.id,
            resolved_at=now, resolution_note="Approved by " + ", ".join(f"@{n}" for n in names),
            **({"approvals": [*(ticket.approvals or []), _entry(actor, now)]}
               if (ticket.approvals_needed or 1) > 1 else {}))
    if waits:
        audit.record(session, user=actor, action="approval.approve", resource_type="ticket",
                     resource_id=ticket.ticket_id, request=request,
                     details={"job": job.job_id, "requester": job.user.username,
                              "break_glass": True, "waiting_for": "a second admin",
                              **({"run": run} if run is not None else {})})
        return job
    moved = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.awaiting_approval)
        .values(job_values(status=JobStatus.pending, heartbeat_at=now, approved_by=actor.id,
                           approved_at=now))
        .execution_options(synchronize_session=False)
    ).rowcount
    latest(session, job)  # the committed row; locks the job only, not its server
    if moved != 1:
        raise InvalidState(f"Job {job.job_id[:8]} is {job.status.value.replace('_', ' ')}, no "
                           "longer waiting for approval.")
    details = {"job": job.job_id, "requester": job.user.username,
               "playbook": job.playbook.name, "server": job.server.hostname,
               "self_approved": job.user_id == actor.id}
    if run is not None:
        details["run"] = run
    audit.record(session, user=actor, action="approval.approve", resource_type="ticket",
                 resource_id=ticket.ticket_id, request=request, details=details)
    return job


def _entry(actor: User, now: datetime) -> dict[str, object]:
    return {"user_id": actor.id, "username": actor.username, "at": now.isoformat()}


def _count_approval(session: Session, actor: User, ticket: Ticket,
                    now: datetime) -> list[dict[str, object]] | None:
    """For a request needing several admins: refuse an admin approving twice; when this
    approval is not the last one needed, record it on the still-open ticket and return the
    approvals so far (None: this one decides). Concurrent approvals queue on the ticket's
    row lock (MariaDB) and the UPDATE is conditional on the row read, so none is lost."""
    needed = ticket.approvals_needed or 1
    if needed <= 1:
        return None
    latest(session, ticket, exclusive=True)
    if ticket.status != TicketStatus.open:
        raise InvalidState(_decided_message(ticket))
    given = list(ticket.approvals or [])
    if any(a.get("user_id") == actor.id for a in given):
        raise NotAllowed(f"You already approved this run; it needs {needed} approvals from "
                         "different admins.")
    if len(given) + 1 >= needed:
        return None
    seen = ticket.updated_at
    updated = [*given, _entry(actor, now)]
    won = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.status == TicketStatus.open,
                             Ticket.updated_at == seen)
        .values(approvals=updated, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    latest(session, ticket)
    if won != 1:
        raise InvalidState(f"Approval request {short(ticket)} changed meanwhile; try again.")
    return updated


def _reject(session: Session, actor: User, ticket: Ticket, text: str | None, now: datetime,
            request: RequestInfo | None, *, run: str | None = None) -> Job:
    """Decide one open request as rejected and cancel its job (audited)."""
    job = _job_of(ticket)
    lock_job_rows(session, [job.id])  # before its ticket (core.jobs.lock_run_rows)
    why = f"{REJECTED_PREFIX}@{actor.username}" + (f": {text}" if text else "")
    _decide(session, ticket, status=TicketStatus.closed, assignee_id=actor.id,
            resolution_note=text)
    session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.awaiting_approval)
        .values(job_values(status=JobStatus.cancelled, completed_at=now, error_message=why))
        .execution_options(synchronize_session=False)
    )
    latest(session, job)  # the committed row; locks the job only, not its server
    details = {"job": job.job_id, "requester": job.user.username, "reason": text}
    if run is not None:
        details["run"] = run
    audit.record(session, user=actor, action="approval.reject", resource_type="ticket",
                 resource_id=ticket.ticket_id, request=request, details=details)
    return job


def expire_overdue(session: Session, now: datetime | None = None) -> list[Ticket]:
    """Expire every open approval request past its `expires_at`; cancel their jobs.

    Returns the tickets expired (refreshed, with their jobs), for the caller to update
    their Slack messages. Safe to run from several processes: each ticket expires once.
    """
    now = now or utcnow()
    overdue = session.scalars(
        select(Ticket).where(Ticket.kind == TicketKind.approval,
                             Ticket.status == TicketStatus.open,
                             Ticket.expires_at.is_not(None), Ticket.expires_at <= now)
    ).unique().all()
    # in job-id order: each job is locked before its ticket (`_expire`), in the order a
    # cancel or a claim locks them
    overdue = sorted(overdue, key=lambda t: (t.job_id or 0, t.id))
    return [ticket for ticket in overdue if _expire(session, ticket, now)]


def decision(ticket: Ticket, *, now: datetime | None = None) -> Decision:
    """What became of an approval request (see the module docstring)."""
    if ticket.status == TicketStatus.open:
        return "expired" if _is_expired(ticket, now or utcnow()) else "pending"
    if ticket.status == TicketStatus.resolved:
        return "approved"
    if ticket.assignee_id is not None:
        return "rejected"
    note = ticket.resolution_note or ""
    if note.startswith(request_digest.VOID_PREFIX):
        return "void"
    return "withdrawn" if note.startswith("Withdrawn") else "expired"


# internals ------------------------------------------------------------------------------


def _open_request(session: Session, ticket_ref: str | int) -> Ticket:
    ticket = get_ticket(session, ticket_ref)
    if ticket.kind != TicketKind.approval:
        raise InvalidState(f"Ticket {short(ticket)} is not an approval request.")
    if ticket.status != TicketStatus.open:
        sibling = freezes.open_sibling(session, ticket)  # a break-glass job's second ticket
        if sibling is not None:
            return sibling
        raise InvalidState(_decided_message(ticket))
    return ticket


def _job_of(ticket: Ticket) -> Job:
    if ticket.job is None:
        raise InvalidState(f"Approval request {short(ticket)} has no job.")
    return ticket.job


def _is_expired(ticket: Ticket, now: datetime) -> bool:
    return ticket.expires_at is not None and ticket.expires_at <= now


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"


def _decided_message(ticket: Ticket) -> str:
    outcome = decision(ticket)
    by = f" by @{ticket.assignee.username}" if ticket.assignee is not None else ""
    if outcome in ("approved", "rejected"):
        return f"Approval request {short(ticket)} was already {outcome}{by}."
    if outcome == "withdrawn":
        return f"Approval request {short(ticket)} was withdrawn: its job was cancelled."
    if outcome == "void":
        return f"Approval request {short(ticket)} is void: {ticket.resolution_note}"
    return f"Approval request {short(ticket)} has expired."


def _decide(session: Session, ticket: Ticket, **values: object) -> None:
    """Close the still-open request with this decision, or raise if someone decided first."""
    won = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.status == TicketStatus.open)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    latest(session, ticket)
    if won != 1:
        raise InvalidState(_decided_message(ticket))


def _expire(session: Session, ticket: Ticket, now: datetime) -> bool:
    """Expire one request and cancel its job; False if it was decided meanwhile."""
    minutes = ""
    if ticket.expires_at is not None and ticket.created_at is not None:
        ttl = ticket.expires_at - ticket.created_at
        count = round(ttl.total_seconds() / 60)
        minutes = f" within {count} minute{'s' if count != 1 else ''}"
    if ticket.job_id is not None:
        lock_job_rows(session, [ticket.job_id])  # jobs before their tickets (core.jobs)
    won = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.status == TicketStatus.open)
        .values(status=TicketStatus.closed, updated_at=now,
                resolution_note=f"Expired: nobody approved it{minutes}.")
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        return False
    if ticket.job_id is not None:
        session.execute(
            update(Job).where(Job.id == ticket.job_id,
                              Job.status == JobStatus.awaiting_approval)
            .values(job_values(
                status=JobStatus.cancelled, completed_at=now,
                error_message=f"{EXPIRED_PREFIX} at {_when(ticket.expires_at)} "
                              f"(nobody approved it{minutes})."))
            .execution_options(synchronize_session=False)
        )
    session.refresh(ticket)
    if ticket.job is not None:
        session.refresh(ticket.job)
    audit.record(session, user=None, action="approval.expire", resource_type="ticket",
                 resource_id=ticket.ticket_id,
                 details={"job": ticket.job.job_id if ticket.job else None,
                          "expires_at": ticket.expires_at})
    return True
