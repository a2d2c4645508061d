"""Tickets: incidents opened by failed jobs, and the queue people work them from.

An incident is opened automatically when a job fails (`open_incident`), with a priority
taken from the server's environment. Operators take it (in progress, assigned to them) and
resolve it with a note; the assignee or an admin closes it. Approval requests are tickets
too (kind `approval`), but they are decided in `core.approvals`, not taken or resolved here.

Each change writes its own audit row (`ticket.open` by the system, `ticket.take`,
`ticket.resolve`, `ticket.close` by the actor). State changes are conditional UPDATEs, so
two people acting at once get one winner and one clear InvalidState; the loser's re-read
locks the ticket row only, not its job's server (`db.locking.latest`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from core import audit, permissions
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, NotAllowed, UnknownTicket
from core.refs import find
from db.base import utcnow
from db.locking import latest
from db.models import (
    Environment,
    Job,
    Role,
    Ticket,
    TicketKind,
    TicketPriority,
    TicketStatus,
    User,
)

PRIORITY_BY_ENVIRONMENT = {
    Environment.production: TicketPriority.critical,
    Environment.staging: TicketPriority.high,
    Environment.development: TicketPriority.medium,
}
PRIORITY_ORDER = [TicketPriority.critical, TicketPriority.high, TicketPriority.medium,
                  TicketPriority.low]
ACTIVE_STATUSES = (TicketStatus.open, TicketStatus.in_progress)
MAX_NOTE = 4000


def get_ticket(session: Session, ticket_ref: str | int) -> Ticket:
    """The ticket named by its uuid, a unique prefix (6+ characters) or its numeric id.

    Raises UnknownTicket, or InvalidInput for an ambiguous or too short prefix.
    """
    return find(session, Ticket, Ticket.ticket_id, ticket_ref, what="ticket",
                not_found=UnknownTicket)


def open_incident(session: Session, job: Job) -> Ticket:
    """Open the incident ticket of a failed job (once: a second call returns the first).

    Title "<playbook> failed on <host>", description the job's error message, created by the
    job's requester, priority from the server's environment.
    """
    existing = session.scalars(
        select(Ticket).where(Ticket.job_id == job.id, Ticket.kind == TicketKind.incident)
        .order_by(Ticket.id).limit(1)
    ).unique().first()
    if existing is not None:
        return existing
    mode = " (check mode)" if job.check_mode else ""
    ticket = Ticket(
        kind=TicketKind.incident,
        job_id=job.id,
        created_by=job.user_id,
        title=f"{job.playbook.name} failed on {job.server.hostname}{mode}"[:255],
        description=job.error_message or "The job failed without an error message.",
        status=TicketStatus.open,
        priority=PRIORITY_BY_ENVIRONMENT.get(job.server.environment, TicketPriority.medium),
    )
    session.add(ticket)
    session.flush()
    audit.record(session, user=None, action="ticket.open", resource_type="ticket",
                 resource_id=ticket.ticket_id,
                 details={"job": job.job_id, "kind": ticket.kind, "priority": ticket.priority,
                          "title": ticket.title})
    return ticket


def take(session: Session, actor: User, ticket_ref: str | int, *,
         request: RequestInfo | None = None) -> Ticket:
    """Assign an open incident to `actor` and mark it in progress (operator or admin).

    An admin may take over a ticket someone else has in progress. Raises NotAllowed,
    UnknownTicket, InvalidState (approval request, already resolved/closed, taken by someone
    else).
    """
    permissions.require(actor, permissions.TICKET_TAKE)
    ticket = get_ticket(session, ticket_ref)
    _require_incident(ticket, "taken")
    if ticket.status == TicketStatus.in_progress and ticket.assignee_id == actor.id:
        raise InvalidState(f"You already have ticket {short(ticket)}.")
    allowed_from = [TicketStatus.open]
    if actor.role == Role.admin:
        allowed_from.append(TicketStatus.in_progress)
    if ticket.status not in allowed_from:
        raise InvalidState(_state_message(ticket))
    previous = ticket.assignee.username if ticket.assignee else None
    _transition(session, ticket, from_statuses=allowed_from, expected_assignee=ticket.assignee_id,
                status=TicketStatus.in_progress, assignee_id=actor.id)
    details: dict[str, Any] = {"status": "in_progress"}
    if previous:
        details["taken_over_from"] = previous
    audit.record(session, user=actor, action="ticket.take", resource_type="ticket",
                 resource_id=ticket.ticket_id, details=details, request=request)
    return ticket


def assign(session: Session, actor: User, ticket_ref: str | int, assignee: User, *,
           request: RequestInfo | None = None) -> Ticket:
    """Give an open or in-progress incident to `assignee` (an active operator or admin), by
    an admin; it is then in progress. Raises NotAllowed, UnknownTicket, InvalidInput (the
    assignee cannot work tickets), InvalidState (approval request, resolved or closed, or
    already theirs)."""
    permissions.require(actor, permissions.TICKET_ASSIGN)
    ticket = get_ticket(session, ticket_ref)
    _require_incident(ticket, "assigned")
    if not assignee.is_active or not permissions.can(assignee, permissions.TICKET_TAKE):
        raise InvalidInput(f"@{assignee.username} cannot work tickets (an active operator or "
                           "admin can).")
    if ticket.assignee_id == assignee.id:
        raise InvalidState(f"Ticket {short(ticket)} is already @{assignee.username}'s.")
    if ticket.status not in ACTIVE_STATUSES:
        raise InvalidState(_state_message(ticket))
    previous = ticket.assignee.username if ticket.assignee else None
    _transition(session, ticket, from_statuses=list(ACTIVE_STATUSES),
                expected_assignee=ticket.assignee_id, status=TicketStatus.in_progress,
                assignee_id=assignee.id)
    details: dict[str, Any] = {"status": "in_progress", "assignee": assignee.username}
    if previous:
        details["previous_assignee"] = previous
    audit.record(session, user=actor, action="ticket.assign", resource_type="ticket",
                 resource_id=ticket.ticket_id, details=details, request=request)
    return ticket


def resolve(session: Session, actor: User, ticket_ref: str | int, note: str, *,
            request: RequestInfo | None = None) -> Ticket:
    """Resolve an incident with a note (required). Operators resolve open tickets and their
    own; a ticket in someone else's hands needs that person or an admin.

    Raises NotAllowed, UnknownTicket, InvalidInput (empty or huge note), InvalidState.
    """
    permissions.require(actor, permissions.TICKET_RESOLVE)
    text = _note(note, required=True)
    ticket = get_ticket(session, ticket_ref)
    _require_incident(ticket, "resolved")
    if ticket.status not in ACTIVE_STATUSES:
        raise InvalidState(_state_message(ticket))
    if (ticket.assignee_id not in (None, actor.id) and actor.role != Role.admin):
        raise NotAllowed(f"Ticket {short(ticket)} is assigned to @{ticket.assignee.username}; "
                         "only they or an admin can resolve it.")
    _transition(session, ticket, from_statuses=list(ACTIVE_STATUSES),
                expected_assignee=ticket.assignee_id, status=TicketStatus.resolved,
                assignee_id=ticket.assignee_id or actor.id, resolved_at=utcnow(),
                resolution_note=text)
    audit.record(session, user=actor, action="ticket.resolve", resource_type="ticket",
                 resource_id=ticket.ticket_id, details={"status": "resolved", "note": text},
                 request=request)
    return ticket


def close(session: Session, actor: User, ticket_ref: str | int, *, note: str | None = None,
          request: RequestInfo | None = None) -> Ticket:
    """Close an incident: its assignee (operator or above) or any admin.

    A resolved ticket is closed as done; an open or in-progress one is closed without a fix
    (duplicate, won't fix), keeping `note` as the reason. Raises NotAllowed, UnknownTicket,
    InvalidState (approval request, already closed).
    """
    ticket = get_ticket(session, ticket_ref)
    permissions.require(actor, permissions.TICKET_CLOSE, owner_id=ticket.assignee_id)
    _require_incident(ticket, "closed")
    text = _note(note, required=False)
    if ticket.status == TicketStatus.closed:
        raise InvalidState(_state_message(ticket))
    previous = ticket.status
    values: dict[str, Any] = {"status": TicketStatus.closed, "closed_at": utcnow(),
                              "closed_by": actor.id}
    if text and not ticket.resolution_note:
        values["resolution_note"] = text
    elif text:
        values["resolution_note"] = f"{ticket.resolution_note}\n\nClosed: {text}"[:MAX_NOTE * 2]
    _transition(session, ticket, from_statuses=[previous], expected_assignee=ticket.assignee_id,
                **values)
    audit.record(session, user=actor, action="ticket.close", resource_type="ticket",
                 resource_id=ticket.ticket_id,
                 details={"status": "closed", "previous_status": previous, "note": text},
                 request=request)
    return ticket


def queue(session: Session, *, kind: TicketKind | None = None,
          statuses: Iterable[TicketStatus] = ACTIVE_STATUSES,
          assignee_id: int | None = None, limit: int = 50) -> list[Ticket]:
    """Open and in-progress tickets, most urgent first (critical → low), then oldest first."""
    query = select(Ticket).where(Ticket.status.in_(list(statuses)))
    if kind is not None:
        query = query.where(Ticket.kind == kind)
    if assignee_id is not None:
        query = query.where(Ticket.assignee_id == assignee_id)
    query = query.order_by(priority_rank(), Ticket.created_at, Ticket.id).limit(limit)
    return list(session.scalars(query).unique())


def list_tickets(session: Session, *, status: TicketStatus | None = None,
                 kind: TicketKind | None = None, priority: TicketPriority | None = None,
                 assignee_id: int | None = None, created_by: int | None = None,
                 job_id: int | None = None, limit: int = 50) -> list[Ticket]:
    """Tickets matching every given filter, newest first."""
    query = select(Ticket)
    for column, value in ((Ticket.status, status), (Ticket.kind, kind),
                          (Ticket.priority, priority), (Ticket.assignee_id, assignee_id),
                          (Ticket.created_by, created_by), (Ticket.job_id, job_id)):
        if value is not None:
            query = query.where(column == value)
    query = query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit)
    return list(session.scalars(query).unique())


def sharing_message(session: Session, ticket: Ticket) -> list[Ticket]:
    """The tickets shown in the same Slack message as `ticket` (a run's one failure
    message), itself included, oldest first; just `[ticket]` when it has no message."""
    if not (ticket.slack_channel_id and ticket.slack_message_ts):
        return [ticket]
    found = list(session.scalars(
        select(Ticket).where(Ticket.slack_channel_id == ticket.slack_channel_id,
                             Ticket.slack_message_ts == ticket.slack_message_ts)
        .order_by(Ticket.id)
    ).unique())
    return found or [ticket]


def attach_message(session: Session, ticket_ids: Iterable[str], channel: str, ts: str) -> None:
    """Record where these tickets were posted (one message may show several, e.g. a run's
    failure message), so their buttons redraw it whole."""
    wanted = list(ticket_ids)
    if wanted:
        session.execute(update(Ticket).where(Ticket.ticket_id.in_(wanted))
                        .values(slack_channel_id=channel, slack_message_ts=ts)
                        .execution_options(synchronize_session=False))


def priority_rank() -> Any:
    """An ORDER BY expression ranking critical first, portable across SQLite and MySQL
    (whose ENUM would otherwise sort by declaration order, SQLite's text alphabetically)."""
    return case({p: rank for rank, p in enumerate(PRIORITY_ORDER)}, value=Ticket.priority,
                else_=len(PRIORITY_ORDER))


def short(ticket: Ticket) -> str:
    """How messages name a ticket: the first 8 characters of its uuid, in backticks."""
    return f"`{ticket.ticket_id[:8]}`"


def _require_incident(ticket: Ticket, verb: str) -> None:
    if ticket.kind == TicketKind.approval:
        raise InvalidState(f"Ticket {short(ticket)} is an approval request: it is approved or "
                           f"rejected, not {verb}.")


def _note(note: str | None, *, required: bool) -> str | None:
    text = (note or "").strip()
    if not text:
        if required:
            raise InvalidInput("A resolution note is required: say what fixed it.")
        return None
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"The note is too long ({len(text)} characters; at most {MAX_NOTE}).")
    return text


def _state_message(ticket: Ticket) -> str:
    if ticket.status == TicketStatus.in_progress and ticket.assignee is not None:
        return f"Ticket {short(ticket)} is already taken by @{ticket.assignee.username}."
    return f"Ticket {short(ticket)} is already {ticket.status.value.replace('_', ' ')}."


def _transition(session: Session, ticket: Ticket, *, from_statuses: list[TicketStatus],
                expected_assignee: int | None, **values: Any) -> None:
    """One conditional UPDATE: applies only if nobody changed the ticket meanwhile."""
    condition = [Ticket.id == ticket.id, Ticket.status.in_(from_statuses)]
    condition.append(Ticket.assignee_id.is_(None) if expected_assignee is None
                     else Ticket.assignee_id == expected_assignee)
    changed = session.execute(
        update(Ticket).where(*condition).values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        latest(session, ticket)  # the latest, not the snapshot; locks the ticket row only
        raise InvalidState(f"Someone else changed ticket {short(ticket)} just now: "
                           + _state_message(ticket))
    session.expire(ticket)
    session.refresh(ticket)
