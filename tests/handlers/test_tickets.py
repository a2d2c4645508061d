"""The ticket queue and its work from Slack: list, show, take, resolve (command and modal),
close — allowed and denied, each audited."""

from __future__ import annotations

from sqlalchemy import select

from core import tickets as core_tickets
from db.models import Job, JobStatus, TicketStatus
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_OPERATOR, VIEWER
from tests.handlers.harness import text_value
from tests.handlers.test_jobs import add_job

TICKET_TS = "1700000000.000900"


def incident(slack, host="local") -> str:
    """A failed job's incident ticket, posted in the job's thread as the worker does."""
    job_id = add_job(slack, status=JobStatus.failed, host=host, error="Task x failed: boom")
    with transaction(slack.session_factory) as session:
        job = session.scalars(select(Job).where(Job.job_id == job_id)).unique().one()
        ticket = core_tickets.open_incident(session, job)
        ticket.slack_channel_id, ticket.slack_message_ts = "C_OPS", TICKET_TS
        return ticket.ticket_id


def test_the_queue_lists_open_tickets_most_urgent_first(slack):
    dev = incident(slack, host="local")
    prod = incident(slack, host="prod-local")

    result = slack.command(ids.CMD_TICKETS, "", user=VIEWER)

    text = result.reply_text
    assert prod[:8] in text and dev[:8] in text
    assert text.index(prod[:8]) < text.index(dev[:8])  # critical before medium
    [row] = slack.audit("tickets.list")
    assert row.details["outcome"] == "allowed"


def test_show_a_ticket_with_its_buttons(slack):
    ticket_id = incident(slack)

    result = slack.command(ids.CMD_TICKETS, f"show {ticket_id[:8]}", user=VIEWER)

    assert "ping failed on local" in result.reply_text
    blocks = str(result.replies[0].blocks)
    assert ids.ACTION_TICKET_TAKE in blocks and ids.ACTION_TICKET_RESOLVE in blocks


def test_operator_takes_a_ticket_and_its_message_is_redrawn(slack):
    ticket_id = incident(slack)

    result = slack.command(ids.CMD_TICKETS, f"take {ticket_id[:8]}", user=OPERATOR)

    [ticket] = slack.tickets()
    assert ticket.status == TicketStatus.in_progress
    assert ticket.assignee.slack_user_id == OPERATOR
    assert "is yours" in result.reply_text
    [update] = result.updated
    assert update.params["ts"] == TICKET_TS and "in progress" in str(update.params["blocks"])
    [row] = slack.audit("ticket.take")
    assert row.details["outcome"] == "allowed"


def test_viewer_cannot_take_and_the_denial_is_audited(slack):
    ticket_id = incident(slack)

    result = slack.click(ids.ACTION_TICKET_TAKE, ticket_id, user=VIEWER)

    assert "operator role" in result.reply_text
    assert slack.tickets()[0].status == TicketStatus.open
    [row] = slack.audit("ticket.take")
    assert row.details["outcome"] == "denied"


def test_a_ticket_taken_by_someone_else_says_who_has_it(slack):
    ticket_id = incident(slack)
    slack.click(ids.ACTION_TICKET_TAKE, ticket_id, user=OTHER_OPERATOR)

    result = slack.click(ids.ACTION_TICKET_TAKE, ticket_id, user=OPERATOR)

    assert "already taken by @oscar" in result.reply_text


def test_resolve_by_command_needs_a_note(slack):
    ticket_id = incident(slack)

    missing = slack.command(ids.CMD_TICKETS, f"resolve {ticket_id[:8]}", user=OPERATOR)
    done = slack.command(ids.CMD_TICKETS, f'resolve {ticket_id[:8]} restarted "nginx"',
                         user=OPERATOR)

    assert "note is required" in missing.reply_text
    assert "resolved" in done.reply_text
    [ticket] = slack.tickets()
    assert ticket.status == TicketStatus.resolved
    assert ticket.resolution_note == 'restarted "nginx"'


def test_resolve_button_opens_a_modal_and_its_note_resolves(slack):
    ticket_id = incident(slack)

    opened = slack.click(ids.ACTION_TICKET_RESOLVE, ticket_id, user=OPERATOR,
                         message_ts=TICKET_TS)
    [view] = opened.views
    assert view["callback_id"] == ids.VIEW_RESOLVE_TICKET

    empty = slack.submit(view, {ids.BLOCK_RESOLVE_NOTE: text_value("  ")}, user=OPERATOR)
    assert empty.ack["response_action"] == "errors"
    assert slack.tickets()[0].status == TicketStatus.open
    [refused] = slack.audit("ticket.resolve")
    assert refused.details["outcome"] == "denied"

    done = slack.submit(view, {ids.BLOCK_RESOLVE_NOTE: text_value("disk was full, cleaned")},
                        user=OPERATOR)
    [ticket] = slack.tickets()
    assert ticket.status == TicketStatus.resolved
    assert ticket.resolution_note == "disk was full, cleaned"
    assert any(c.params.get("ts") == TICKET_TS for c in done.updated)


def test_admin_closes_any_ticket_operator_only_their_own(slack):
    ticket_id = incident(slack)
    slack.click(ids.ACTION_TICKET_TAKE, ticket_id, user=OTHER_OPERATOR)

    denied = slack.click(ids.ACTION_TICKET_CLOSE, ticket_id, user=OPERATOR)
    closed = slack.command(ids.CMD_TICKETS, f"close {ticket_id[:8]}", user=ADMIN)

    assert "admin" in denied.reply_text
    assert "closed" in closed.reply_text
    assert slack.tickets()[0].status == TicketStatus.closed
    assert [r.details["outcome"] for r in slack.audit("ticket.close")] == ["denied", "allowed"]
    # the ticket says who closed it, and when
    shown = slack.command(ids.CMD_TICKETS, f"show {ticket_id[:8]}", user=OPERATOR).reply_text
    assert "*Closed*" in shown and "by <@U_BOB>" in shown


def test_mistyped_ticket_subcommand_gets_the_closest(slack):
    result = slack.command(ids.CMD_TICKETS, "tkae 1234abcd", user=OPERATOR)

    assert "Did you mean: take" in result.reply_text


def test_retry_button_on_an_incident_ticket(slack):
    incident(slack)
    [ticket] = slack.tickets()

    retried = slack.click(ids.ACTION_JOB_RETRY, ticket.job.job_id, user=OPERATOR)

    assert len(slack.jobs()) == 2
    assert len(slack.queue.enqueued) == 1
    # the new job's message says which job it retries (by the id rule: #N)
    posted = [c for c in retried.calls if c.method == "chat.postMessage"]
    assert f"retry of `#{ticket.job.id}`" in str(posted[-1].params["blocks"])


def test_an_admin_assigns_a_ticket_and_its_assignee_is_told(slack):
    ticket_id = incident(slack)

    refused = slack.command(ids.CMD_TICKETS, f"assign {ticket_id[:8]} @oscar", user=OPERATOR)
    viewer = slack.command(ids.CMD_TICKETS, f"assign {ticket_id[:8]} @victor", user=ADMIN)
    given = slack.command(ids.CMD_TICKETS, f"assign {ticket_id[:8]} @oscar", user=ADMIN)

    assert "admin" in refused.reply_text
    assert "cannot work tickets" in viewer.reply_text
    assert "is @oscar's now" in given.reply_text
    [ticket] = slack.tickets()
    assert ticket.assignee.username == "oscar" and ticket.status == TicketStatus.in_progress
    # oscar gets a DM (ticket_assigned is on by default), the admin nothing
    told = [c for c in given.calls_to("chat.postMessage") if "gave you ticket" in
            str(c.params.get("text"))]
    assert len(told) == 1 and "@bob gave you ticket" in told[0].params["text"]
    [row] = [r for r in slack.audit("ticket.assign") if r.details["outcome"] == "allowed"]
    assert row.details["assignee"] == "oscar"
