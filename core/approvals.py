"""Approval of production runs: four-eyes, one decision, and expiry.

A production job waits in `awaiting_approval` with an open approval ticket (kind
`approval`, see `core.jobs.launch`). An admin who is not the requester approves it (the job
becomes `pending` and the caller enqueues it) or rejects it (the job is cancelled). The
`admins_self_approve` policy lets an admin approve their own request (small teams).

Only one decision wins: each is a conditional UPDATE on the still-open ticket, so a double
click or two admins at once get one success and one InvalidState naming the decision made.
Requests expire after the policy's TTL: `expire_overdue` (run by the clock) closes them and
cancels their jobs; approving an expired request is refused.

How a decided ticket reads (`decision`):
    approved   status resolved, assignee = the approver, note "Approved by @x"
    rejected   status closed,   assignee = the admin who rejected, note = the reason (or none)
    expired    status closed,   no assignee, note "Expired: ..."
    withdrawn  status closed,   no assignee, note "Withdrawn: ..." (requester cancelled the job)
Each decision writes an audit row (`approval.approve`, `approval.reject`, `approval.expire`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit, permissions
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, NotAllowed
from core.jobs import LaunchPolicy
from core.tickets import get_ticket, short
from db.base import utcnow
from db.models import Job, JobStatus, Ticket, TicketKind, TicketStatus, User, job_values

Decision = Literal["pending", "approved", "rejected", "expired", "withdrawn"]
MAX_REASON = 1000


def approve(session: Session, actor: User, ticket_ref: str | int, *, policy: LaunchPolicy,
            request: RequestInfo | None = None) -> Job:
    """Approve a production run: the job moves `awaiting_approval` → `pending`.

    The caller commits, then enqueues the job. Raises NotAllowed (not an admin; the
    requester without `admins_self_approve`), UnknownTicket, InvalidState (not an approval
    request, already decided, expired).
    """
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    ticket = _open_request(session, ticket_ref)
    job = _job_of(ticket)
    if job.user_id == actor.id and not policy.admins_self_approve:
        raise NotAllowed("You requested this run, so another admin must approve it "
                         "(four-eyes rule).")
    now = utcnow()
    if _is_expired(ticket, now):
        _expire(session, ticket, now)
        raise InvalidState(f"Approval request {short(ticket)} expired at "
                           f"{_when(ticket.expires_at)}; the job was cancelled. Run it again "
                           "to ask for a new approval.")
    _decide(session, ticket, status=TicketStatus.resolved, assignee_id=actor.id,
            resolved_at=now, resolution_note=f"Approved by @{actor.username}")
    moved = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.awaiting_approval)
        .values(job_values(status=JobStatus.pending, heartbeat_at=now))
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(job, with_for_update={"read": True})
    if moved != 1:
        raise InvalidState(f"Job {job.job_id[:8]} is {job.status.value.replace('_', ' ')}, no "
                           "longer waiting for approval.")
    audit.record(session, user=actor, action="approval.approve", resource_type="ticket",
                 resource_id=ticket.ticket_id, request=request,
                 details={"job": job.job_id, "requester": job.user.username,
                          "playbook": job.playbook.name, "server": job.server.hostname,
                          "self_approved": job.user_id == actor.id})
    return job


def reject(session: Session, actor: User, ticket_ref: str | int, *, reason: str | None = None,
           request: RequestInfo | None = None) -> Job:
    """Reject a production run: its job is cancelled ("Rejected by @x: reason").

    Any admin may reject, the requester included (that withdraws the request). Raises
    NotAllowed, UnknownTicket, InvalidInput (reason too long), InvalidState (not an
    approval request, already decided).
    """
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    text = (reason or "").strip() or None
    if text and len(text) > MAX_REASON:
        raise InvalidInput(f"The reason is too long (at most {MAX_REASON} characters).")
    ticket = _open_request(session, ticket_ref)
    job = _job_of(ticket)
    now = utcnow()
    why = f"Rejected by @{actor.username}" + (f": {text}" if text else "")
    _decide(session, ticket, status=TicketStatus.closed, assignee_id=actor.id,
            resolution_note=text)
    session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.awaiting_approval)
        .values(job_values(status=JobStatus.cancelled, completed_at=now, error_message=why))
        .execution_options(synchronize_session=False)
    )
    session.refresh(job, with_for_update={"read": True})
    audit.record(session, user=actor, action="approval.reject", resource_type="ticket",
                 resource_id=ticket.ticket_id, request=request,
                 details={"job": job.job_id, "requester": job.user.username, "reason": text})
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
        .order_by(Ticket.id)
    ).unique().all()
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
    return "withdrawn" if note.startswith("Withdrawn") else "expired"


# internals ------------------------------------------------------------------------------


def _open_request(session: Session, ticket_ref: str | int) -> Ticket:
    ticket = get_ticket(session, ticket_ref)
    if ticket.kind != TicketKind.approval:
        raise InvalidState(f"Ticket {short(ticket)} is not an approval request.")
    if ticket.status != TicketStatus.open:
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
    return f"Approval request {short(ticket)} has expired."


def _decide(session: Session, ticket: Ticket, **values: object) -> None:
    """Close the still-open request with this decision, or raise if someone decided first."""
    won = session.execute(
        update(Ticket).where(Ticket.id == ticket.id, Ticket.status == TicketStatus.open)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(ticket, with_for_update={"read": True})
    if won != 1:
        raise InvalidState(_decided_message(ticket))


def _expire(session: Session, ticket: Ticket, now: datetime) -> bool:
    """Expire one request and cancel its job; False if it was decided meanwhile."""
    minutes = ""
    if ticket.expires_at is not None and ticket.created_at is not None:
        ttl = ticket.expires_at - ticket.created_at
        minutes = f" within {round(ttl.total_seconds() / 60)} minutes"
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
                error_message=f"Approval request expired at {_when(ticket.expires_at)} "
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
