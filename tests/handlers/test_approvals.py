"""Approving production runs from the approval request's buttons: four-eyes, one decision,
expiry, and approving enqueues the job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from db.base import utcnow
from db.models import JobStatus, Ticket
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_ADMIN
from tests.handlers.harness import text_value


def request_production_run(slack, user=OPERATOR):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=user)
    [job] = slack.jobs()
    [ticket] = slack.tickets()
    assert job.status == JobStatus.awaiting_approval
    return result, job, ticket


def click(slack, action_id, ticket, job, user):
    return slack.click(action_id, ticket.ticket_id, user=user,
                       channel=job.slack_channel_id, message_ts=job.slack_message_ts)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_another_admin_approves_and_the_job_is_queued(slack):
    _, job, ticket = request_production_run(slack)

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    approved = slack.job(job.job_id)
    assert approved.status == JobStatus.pending
    assert slack.queue.enqueued == [job.job_id]
    assert approved.dramatiq_message_id == "msg-1"
    # the approval request message became the job message (no Approve button any more)
    [update_call] = result.updated
    assert update_call.params["ts"] == job.slack_message_ts
    assert ids.ACTION_APPROVAL_APPROVE not in str(update_call.params["blocks"])
    assert "Approved" in result.reply_text
    [row] = slack.audit("approval.approve")
    assert row.user_id == slack.user(ADMIN).id and row.details["outcome"] == "allowed"


def test_the_requester_cannot_approve_their_own_run(slack):
    _, job, ticket = request_production_run(slack, user=ADMIN)

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    assert "another admin" in result.reply_text
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval
    assert slack.queue.enqueued == []
    [row] = slack.audit("approval.approve")
    assert row.details["outcome"] == "denied"

    # and then another admin can
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, OTHER_ADMIN)
    assert slack.queue.enqueued == [job.job_id]


def test_an_operator_cannot_approve(slack):
    _, job, ticket = request_production_run(slack, user=ADMIN)

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, OPERATOR)

    assert "admin" in result.reply_text
    assert slack.queue.enqueued == []
    [row] = slack.audit("approval.approve")
    assert row.details["outcome"] == "denied"


def test_a_second_approval_is_told_it_was_decided(slack):
    _, job, ticket = request_production_run(slack)
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    again = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, OTHER_ADMIN)

    assert "already approved" in again.reply_text
    assert slack.queue.enqueued == [job.job_id]


def test_an_expired_request_cannot_be_approved_and_shows_it(slack):
    _, job, ticket = request_production_run(slack)
    with transaction(slack.session_factory) as session:
        session.execute(update(Ticket).where(Ticket.id == ticket.id)
                        .values(expires_at=utcnow() - timedelta(minutes=1)))

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    assert "expired" in result.reply_text
    assert slack.queue.enqueued == []
    assert slack.job(job.job_id).status == JobStatus.cancelled
    [redraw] = result.updated
    assert "expired" in str(redraw.params["blocks"])
    assert ids.ACTION_APPROVAL_APPROVE not in str(redraw.params["blocks"])
    assert "Approval needed" not in str(redraw.params["blocks"])  # it is no longer


def reject(slack, ticket, job, user, reason="not during the release"):
    """Click Reject, then submit the modal it opens with `reason`."""
    opened = click(slack, ids.ACTION_APPROVAL_REJECT, ticket, job, user)
    [view] = opened.views
    return slack.submit(view, {ids.BLOCK_REJECT_REASON: text_value(reason)}, user=user)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_rejecting_asks_for_a_reason_and_shows_it_on_the_card_and_the_job(slack):
    _, job, ticket = request_production_run(slack)

    # the Reject button opens a modal and decides nothing yet
    opened = click(slack, ids.ACTION_APPROVAL_REJECT, ticket, job, ADMIN)
    [view] = opened.views
    assert view["callback_id"] == ids.VIEW_REJECT_APPROVAL
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval

    # an empty reason keeps the modal open with a field error, audited as refused
    empty = slack.submit(view, {ids.BLOCK_REJECT_REASON: text_value("   ")}, user=ADMIN)
    assert empty.ack["response_action"] == "errors"
    assert ids.BLOCK_REJECT_REASON in empty.ack["errors"]
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval
    [refused] = slack.audit("approval.reject")
    assert refused.details["outcome"] == "denied"

    result = slack.submit(view, {ids.BLOCK_REJECT_REASON: text_value("<!channel> wait for *QA*")},
                          user=ADMIN)

    rejected = slack.job(job.job_id)
    assert rejected.status == JobStatus.cancelled
    assert rejected.error_message == "Rejected by @bob: <!channel> wait for *QA*"
    assert slack.queue.enqueued == []
    # the request was the run's message: it is now the cancelled job's card, naming who
    # rejected it and why (escaped: no ping), with no Approve button left
    shown = str(result.updated[-1].params["blocks"])
    assert result.updated[-1].params["ts"] == job.slack_message_ts
    assert "Rejected by @bob: &lt;!channel&gt; wait for *QA*" in shown
    assert "rejected ·" in shown and "<!channel>" not in shown
    assert ids.ACTION_APPROVAL_APPROVE not in shown
    assert [r.details["outcome"] for r in slack.audit("approval.reject")] == ["denied",
                                                                              "allowed"]
    assert slack.audit("approval.reject")[-1].details["reason"] == "<!channel> wait for *QA*"
    details = slack.command(ids.CMD_JOB, job.job_id[:8], user=OPERATOR).reply_text
    assert "Rejected by @bob: &lt;!channel&gt; wait for *QA*" in details


def test_reject_from_the_ticket_command_needs_a_reason(slack):
    _, job, ticket = request_production_run(slack)

    bare = slack.command(ids.CMD_TICKETS, f"reject {ticket.ticket_id[:8]}", user=ADMIN)
    assert "needs a reason" in bare.reply_text
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval

    slack.command(ids.CMD_TICKETS, f"reject {ticket.ticket_id[:8]} wrong  version", user=ADMIN)
    assert slack.job(job.job_id).error_message == "Rejected by @bob: wrong  version"


def test_reject_on_a_decided_request_opens_no_modal_and_says_so(slack):
    _, job, ticket = request_production_run(slack)
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    late = click(slack, ids.ACTION_APPROVAL_REJECT, ticket, job, OTHER_ADMIN)

    assert late.views == []
    assert "already decided" in late.reply_text
    assert slack.job(job.job_id).status == JobStatus.pending


def test_an_operator_gets_no_reject_modal(slack):
    _, job, ticket = request_production_run(slack, user=ADMIN)

    denied = click(slack, ids.ACTION_APPROVAL_REJECT, ticket, job, OPERATOR)

    assert denied.views == [] and "admin" in denied.reply_text


def test_approve_from_the_ticket_command_works_too(slack):
    _, job, ticket = request_production_run(slack)

    slack.command(ids.CMD_TICKETS, f"approve {ticket.ticket_id[:8]}", user=ADMIN)

    assert slack.queue.enqueued == [job.job_id]


def test_a_rejected_run_is_listed_as_rejected_not_cancelled(slack):
    _, job, ticket = request_production_run(slack)
    reject(slack, ticket, job, ADMIN)

    listing = slack.command(ids.CMD_JOBS, "", user=ADMIN).reply_text

    assert f"`{job.job_id[:8]}`" in listing and "rejected" in listing
    assert "cancelled" not in listing


def test_an_approved_run_says_who_approved_it(slack):
    _, job, ticket = request_production_run(slack)

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)
    details = slack.command(ids.CMD_JOB, job.job_id[:8], user=ADMIN).reply_text

    assert "approved by <@U_BOB>" in str(result.updated[-1].params["blocks"])
    assert "*Approved by*" in details and "<@U_BOB>" in details
    assert slack.job(job.job_id).approved_at is not None
