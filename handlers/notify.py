"""Delivering notifications from the Slack side (`core.notifications` decides who):

- `approval_requested`: every admin who can decide a run's approval request (never its
  requester) gets a DM with a link to the request, and the channel routes of
  `approval_waiting` a message — so a request reaches its approvers wherever it was typed;
- `decision_made`: the requester gets a DM with the decision on their request (always, but
  not during their quiet hours);
- `ticket_assigned`: an admin gave someone a ticket: they are told where their
  `ticket_assigned` setting says (a DM by default), not during their quiet hours.

Delivery never fails the request it follows: a Slack error is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from core import notifications
from core.notifications import Delivery
from db.base import utcnow
from db.models import Job, Ticket, User
from handlers.listeners import Ctx
from slackui.blocks import escape, short_id

log = logging.getLogger(__name__)


def approval_requested(ctx: Ctx, jobs: Sequence[Job], link: str | None) -> int:
    """Tell the approvers of the run of `jobs` (awaiting approval) that it waits; returns how
    many deliveries were made."""
    waiting = [j for j in jobs if j.status.value == "awaiting_approval"]
    if not waiting:
        return 0
    first = waiting[0]
    with ctx.deps.session_factory() as session:
        job = session.get(Job, first.id)
        if job is None:
            return 0
        targets = notifications.approval_recipients(session, job)
        what = (f"@{escape(job.user.username)} asks to run *{escape(job.playbook.name)}* on "
                f"{', '.join(escape(j.server.hostname) for j in waiting)} "
                f"({escape(job.server.environment.value)}), run `{short_id(job.run_id)}`")
    text = f":raised_hand: Approval waiting for you: {what}." + (
        f" <{link}|Open the request> to approve or reject it." if link else "")
    here = first.slack_channel_id
    return sum(_send(ctx, d, text) for d in targets if d.channel_id != here)


def decision_made(ctx: Ctx, jobs: Sequence[Job], decision: str) -> None:
    """DM the requester of these jobs the decision the caller made on their request."""
    if not jobs:
        return
    with ctx.deps.session_factory() as session:
        requester = session.get(User, jobs[0].user_id)
        if requester is None or requester.slack_user_id == ctx.caller.slack_user_id:
            return
        row = notifications.settings_of(session, requester)
        if notifications.in_quiet_hours(row, utcnow()):
            return
        target = Delivery(slack_user_id=requester.slack_user_id)
        decider = session.scalar(select(User.username)
                                 .where(User.slack_user_id == ctx.caller.slack_user_id))
        by = decider or ctx.caller.slack_user_id
    hosts = ", ".join(escape(j.server.hostname) for j in jobs)
    text = (f":{'white_check_mark' if decision == 'approved' else 'no_entry_sign'}: Your run "
            f"of *{escape(jobs[0].playbook.name)}* on {hosts} was {decision} by "
            f"@{escape(by)}.")
    _send(ctx, target, text)


def ticket_assigned(ctx: Ctx, ticket: Ticket) -> None:
    """Tell a ticket's new assignee, where and when their `ticket_assigned` setting says
    (not when they assigned it to themselves)."""
    if ticket.assignee_id is None:
        return
    with ctx.deps.session_factory() as session:
        assignee = session.get(User, ticket.assignee_id)
        if assignee is None or assignee.slack_user_id == ctx.caller.slack_user_id:
            return
        target = notifications.user_delivery(session, assignee, "ticket_assigned")
        by = session.scalar(select(User.username)
                            .where(User.slack_user_id == ctx.caller.slack_user_id))
    if target is None:
        return
    _send(ctx, target, f":bust_in_silhouette: @{escape(by or ctx.caller.slack_user_id)} gave "
                       f"you ticket `{short_id(ticket.ticket_id)}`: {escape(ticket.title)} — "
                       f"`/tickets show {short_id(ticket.ticket_id)}`.")


def _send(ctx: Ctx, target: Delivery, text: str) -> bool:
    try:
        channel: Any = target.channel_id
        if target.slack_user_id:
            channel = ctx.client.conversations_open(users=target.slack_user_id)["channel"]["id"]
        ctx.client.chat_postMessage(channel=channel, text=text)
        return True
    except (SlackApiError, OSError, KeyError) as exc:
        log.warning("could not deliver a notification to %s: %s", target, exc)
        return False
