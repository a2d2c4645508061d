"""Ticket flows shared by `/tickets` and the ticket buttons: list, show, take, resolve, close,
and approval decisions (Approve / Reject), each redrawing the ticket's message afterwards.

A message may show several tickets (a run's one failure message): a change to one redraws
that message from all the tickets it shows. An approval decision decides every open
request of the run (`core.approvals.approve_run` / `reject_run`) and redraws the run's one
message; the run is enqueued once nothing of it awaits approval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from core import approvals, freezes, permissions
from core import tickets as core_tickets
from core import users as core_users
from core.approvals import RunDecision
from core.errors import InvalidState, PlaybotError, UnknownTicket
from db.models import JobStatus, Ticket, TicketKind, TicketStatus
from db.session import transaction
from handlers import notify
from handlers.chat import Action, perform
from handlers.launching import Announced, draw_run, load_run, refresh_job_message, start_run
from handlers.listeners import Ctx
from handlers.parsing import UserRef
from slackui.blocks import escape, short_id
from slackui.message_owner import is_run_message
from slackui.modals import reject_approval_modal, resolve_ticket_modal
from slackui.tickets import (
    approval_message,
    failure_message,
    ticket_list_blocks,
    ticket_message,
)

log = logging.getLogger(__name__)
QUEUE_LIMIT = 30


def _load(ticket: Ticket) -> Ticket:
    """Touch what the ticket's message reads, while its session is still open."""
    _ = (ticket.job, ticket.assignee, ticket.creator)
    if ticket.job is not None:
        _ = (ticket.job.playbook, ticket.job.server, ticket.job.user)
    return ticket


def list_queue(ctx: Ctx) -> None:
    action = Action("tickets.list", "ticket")

    def work(session: Session, user: Any) -> list[Ticket]:
        permissions.require(user, permissions.TICKET_VIEW)
        return [_load(t) for t in core_tickets.queue(session, limit=QUEUE_LIMIT + 1)]

    tickets = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Ticket queue", ticket_list_blocks(tickets, limit=QUEUE_LIMIT))


def show_ticket(ctx: Ctx, ref: str) -> None:
    ticket = _read(ctx, "ticket.show", ref, permissions.TICKET_VIEW)
    text, blocks = ticket_message(ticket)
    ctx.reply.ephemeral(text, blocks)


def _read(ctx: Ctx, name: str, ref: str, permission: str) -> Ticket:
    """The ticket `ref`, ready for its message, for a caller holding `permission` (the look is
    audited as `name`)."""
    action = Action(name, "ticket", ref)

    def work(session: Session, user: Any) -> Ticket:
        permissions.require(user, permission)
        ticket = core_tickets.get_ticket(session, ref)
        action.resource_id = ticket.ticket_id
        return _load(ticket)

    return perform(ctx.deps, ctx.caller, action, work)


def take_ticket(ctx: Ctx, ref: str) -> None:
    ticket = _change(ctx, "ticket.take", ref, lambda s, u: core_tickets.take(
        s, u, ref, request=ctx.caller.request))
    ctx.reply.ephemeral(f":raising_hand: Ticket `{short_id(ticket.ticket_id)}` is yours: "
                        f"{escape(ticket.title)}")


def assign_ticket(ctx: Ctx, ref: str, who: UserRef) -> None:
    """An admin gives a ticket to someone, who is told (their `ticket_assigned` setting)."""
    def change(session: Session, user: Any) -> Ticket:
        assignee = core_users.find_user(session, slack_user_id=who.slack_user_id, name=who.name)
        return core_tickets.assign(session, user, ref, assignee, request=ctx.caller.request)

    ticket = _change(ctx, "ticket.assign", ref, change)
    assignee = ticket.assignee
    name = assignee.username if assignee is not None else str(who)
    ctx.reply.ephemeral(f":bust_in_silhouette: Ticket `{short_id(ticket.ticket_id)}` is "
                        f"@{escape(name)}'s now: {escape(ticket.title)}")
    notify.ticket_assigned(ctx, ticket)


def resolve_ticket(ctx: Ctx, ref: str, note: str) -> None:
    ticket = _change(ctx, "ticket.resolve", ref, lambda s, u: core_tickets.resolve(
        s, u, ref, note, request=ctx.caller.request))
    ctx.reply.ephemeral(f":white_check_mark: Ticket `{short_id(ticket.ticket_id)}` resolved.")


def close_ticket(ctx: Ctx, ref: str) -> None:
    ticket = _change(ctx, "ticket.close", ref, lambda s, u: core_tickets.close(
        s, u, ref, request=ctx.caller.request))
    ctx.reply.ephemeral(f":lock: Ticket `{short_id(ticket.ticket_id)}` closed.")


def _change(ctx: Ctx, name: str, ref: str, change: Any) -> Ticket:
    action = Action(name, "ticket", ref, audited_by_core=True)
    ticket = perform(ctx.deps, ctx.caller, action, lambda s, u: _load(change(s, u)))
    refresh_ticket_message(ctx, ticket)
    return ticket


def open_resolve_modal(ctx: Ctx, ref: str) -> None:
    """The Resolve button: ask for the note in a modal (checked again on submit)."""
    ticket = _read(ctx, "ticket.resolve_form", ref, permissions.TICKET_RESOLVE)
    metadata = {"channel": ctx.caller.channel_id, "ts": ctx.message_ts}
    ctx.client.views_open(trigger_id=ctx.caller.trigger_id,
                          view=resolve_ticket_modal(ticket, metadata=metadata))


def open_reject_modal(ctx: Ctx, ref: str) -> None:
    """The Reject button of an approval card: ask for the reason in a modal (required;
    everything is checked again on submit). A request decided meanwhile is refused and
    redrawn instead, without a modal."""
    action = Action("approval.reject_form", "ticket", ref)

    def work(session: Session, user: Any) -> Ticket:
        permissions.require(user, permissions.APPROVAL_DECIDE)
        ticket = core_tickets.get_ticket(session, ref)
        action.resource_id = ticket.ticket_id
        if ticket.kind != TicketKind.approval:
            raise InvalidState(f"Ticket {core_tickets.short(ticket)} is not an approval "
                               "request.")
        if ticket.status != TicketStatus.open and \
                freezes.open_sibling(session, ticket) is None:
            raise InvalidState(f"Approval request {core_tickets.short(ticket)} is already "
                               "decided.")
        return _load(ticket)

    try:
        ticket = perform(ctx.deps, ctx.caller, action, work)
    except InvalidState:
        redraw_approval(ctx, ref)
        raise
    metadata = {"channel": ctx.caller.channel_id, "ts": ctx.message_ts}
    ctx.client.views_open(trigger_id=ctx.caller.trigger_id,
                          view=reject_approval_modal(ticket, metadata=metadata))


def refresh_ticket_message(ctx: Ctx, ticket: Ticket) -> None:
    """Redraw the ticket's message: where it was posted, or the message clicked on; a
    message showing several tickets (a run's failure message) is drawn from all of them."""
    channel = ticket.slack_channel_id or ctx.caller.channel_id
    ts = ticket.slack_message_ts or (ctx.message_ts if ctx.caller.channel_id else None)
    if not channel or not ts:
        return
    if is_run_message(ticket.job, channel, ts):
        refresh_job_message(ctx, ticket.job)  # only the run message's owner draws it
        return
    with ctx.deps.session_factory() as session:
        shown = [_load(t) for t in core_tickets.sharing_message(session, ticket)]
    text, blocks = failure_message(shown) if len(shown) > 1 else ticket_message(ticket)
    try:
        ctx.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    except (SlackApiError, OSError) as exc:
        log.warning("could not update the message of ticket %s: %s", ticket.ticket_id, exc)


# approvals ------------------------------------------------------------------------------


def approve_request(ctx: Ctx, ref: str) -> Announced | None:
    """Approve a production run: every open request of the run is approved, its jobs become
    pending, the approval card becomes the run message, and the run is enqueued. A refusal
    (requester, expired, decided) also redraws the request."""
    try:
        decided = _decide(ctx, "approval.approve", ref, lambda s, u: approvals.approve_run(
            s, u, ref, policy=ctx.deps.policy, request=ctx.caller.request))
    except InvalidState:
        # An expired or void request is refused inside a transaction that rolls back; settle
        # every overdue request, and this run's void ones, now rather than waiting for the
        # clock or the worker, so the redraw says so.
        with transaction(ctx.deps.session_factory) as session:
            approvals.expire_overdue(session)
            approvals.void_changed_requests(session, ref)
        redraw_approval(ctx, ref)
        raise
    except PlaybotError:
        redraw_approval(ctx, ref)
        raise
    if decided.more_needed:
        redraw_approval(ctx, ref)
        more = decided.more_needed
        ctx.reply.ephemeral(f":white_check_mark: Your approval is recorded: {_what(decided)} "
                            f"still needs {more} more admin{'s' if more != 1 else ''}.")
        return None
    announced = start_run(ctx, decided.run_id)
    if any(j.status == JobStatus.awaiting_approval for j in load_run(ctx, decided.run_id)):
        ctx.reply.ephemeral(f":white_check_mark: Approved: {_what(decided)} still waits for a "
                            "second admin (break-glass during a change freeze).")
        return announced
    ctx.reply.ephemeral(f":white_check_mark: Approved: {_what(decided)} is starting.")
    notify.decision_made(ctx, decided.jobs, "approved")
    return announced


def reject_request(ctx: Ctx, ref: str, reason: str | None = None) -> None:
    """Reject a production run with a reason (required: the core refuses none): its
    production jobs are cancelled ("Rejected by @x: reason"); the rest of the run (its
    servers that need no approval) starts without them."""
    try:
        decided = _decide(ctx, "approval.reject", ref, lambda s, u: approvals.reject_run(
            s, u, ref, reason=reason, request=ctx.caller.request))
    except PlaybotError:
        redraw_approval(ctx, ref)
        raise
    if decided.startable is not None:
        start_run(ctx, decided.run_id)
        rest = " The run's other servers start without them."
    else:
        redraw_approval(ctx, ref)
        rest = ""
    ctx.reply.ephemeral(f":no_entry_sign: Rejected: {_what(decided)} "
                        f"{'is' if len(decided.jobs) == 1 else 'are'} cancelled.{rest}")
    notify.decision_made(ctx, decided.jobs, "rejected")


def _what(decided: RunDecision) -> str:
    if len(decided.jobs) == 1:
        job = decided.jobs[0]
        return (f"job `{short_id(job.job_id)}` ({escape(job.playbook.name)} on "
                f"{escape(job.server.hostname)})")
    hosts = ", ".join(escape(j.server.hostname) for j in decided.jobs)
    return f"{escape(decided.jobs[0].playbook.name)} on {hosts}"


def _decide(ctx: Ctx, name: str, ref: str,
            decide: Callable[[Session, Any], RunDecision]) -> RunDecision:
    """Make an approval decision as the caller: `decide(session, user)`, which the core
    audits (a refusal is audited here as `name`). The jobs come back ready for messages."""
    action = Action(name, "ticket", ref, audited_by_core=True)

    def work(session: Session, user: Any) -> RunDecision:
        decided = decide(session, user)
        for job in decided.jobs:
            _ = (job.playbook, job.server, job.user)
        return decided

    return perform(ctx.deps, ctx.caller, action, work)


def redraw_approval(ctx: Ctx, ref: str) -> None:
    """Redraw an approval request from the database (decided, expired or still open): the
    run's message as its state stands (the approval card while a job awaits approval, else
    the run message) when the request is that message; else the request's own message,
    and then the run's."""
    with ctx.deps.session_factory() as session:
        try:
            ticket = _load(core_tickets.get_ticket(session, ref))
        except UnknownTicket:
            return
        if ticket.kind != TicketKind.approval:
            return
        job = ticket.job
        run_id = job.run_id if job is not None else None
    jobs = load_run(ctx, run_id) if run_id else []
    if len(jobs) > 1:
        draw_run(ctx, jobs)
        return
    channel = ticket.slack_channel_id or ctx.caller.channel_id
    ts = ticket.slack_message_ts or ctx.message_ts
    if job is not None and (not channel or not ts or is_run_message(ticket.job, channel, ts)):
        # the request is the run's card: its one writer draws it from the run's state (a
        # late click on a job cancelled meanwhile keeps the cancelled card and its Retry)
        refresh_job_message(ctx, job)
        return
    if not channel or not ts:
        return
    text, blocks = approval_message(ticket)
    try:
        ctx.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
    except (SlackApiError, OSError) as exc:
        log.warning("could not redraw approval request %s: %s", ticket.ticket_id, exc)
    if job is not None and (job.slack_message_ts, job.slack_channel_id) != (ts, channel):
        refresh_job_message(ctx, job)

