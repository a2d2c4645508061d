"""Change freezes from Slack: admins add and end windows; a launch during one is refused with
the reason and the end; break-glass needs two admins other than the requester."""

from __future__ import annotations

from datetime import timedelta

import pytest

from db.base import utcnow
from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_ADMIN, VIEWER

FREEZE = ids.CMD_FREEZE
RUN = ids.CMD_RUN_PLAYBOOK


def freeze_now(slack, env="development", reason="Release <week> freeze", user=ADMIN):
    """A one-off window from yesterday until tomorrow at 08:00 (UTC)."""
    today = utcnow().date()
    start, end = today - timedelta(days=1), today + timedelta(days=1)
    return slack.command(FREEZE, f"add {env} {start} 00:00 {end} 08:00 UTC {reason}",
                         user=user), f"{end} 08:00"


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_launch_during_a_freeze_is_refused_with_the_reason_and_the_end(slack):
    # given
    added, until = freeze_now(slack)
    assert "Freeze *#1* added" in added.reply_text
    assert "Release &lt;week&gt; freeze" in added.reply_text  # user text is never markup
    # when
    refused = slack.command(RUN, "ping local", user=OPERATOR)
    # then
    assert "frozen until" in refused.reply_text and until in refused.reply_text
    assert "Release &lt;week&gt; freeze" in refused.reply_text or \
        "Release <week> freeze" in refused.reply_text
    assert "--break-glass" in refused.reply_text
    assert slack.jobs() == [] and slack.queue.enqueued == []
    [row] = [r for r in slack.audit("job.launch") if r.details["outcome"] == "denied"]
    assert row.details["reason"] == "Frozen"
    # other environments are not frozen
    slack.command(RUN, "ping stage-01", user=OPERATOR)
    assert [j.server.hostname for j in slack.jobs()] == ["stage-01"]
    # and once an admin ends the window, launches go through again
    listing = slack.command(FREEZE, "", user=VIEWER)
    assert "in force" in listing.reply_text
    ended = slack.command(FREEZE, "end 1", user=ADMIN)
    assert "has ended" in ended.reply_text
    slack.command(RUN, "ping local", user=OPERATOR)
    assert len(slack.jobs()) == 2
    assert [r.action for r in slack.audit() if r.action.startswith("freeze.")] == [
        "freeze.add", "freeze.end"]


def test_only_admins_add_or_end_freezes(slack):
    refused, _ = freeze_now(slack, user=OPERATOR)
    assert "admin" in refused.reply_text and "added" not in refused.reply_text
    bad = slack.command(FREEZE, "add prod fri 16:00 mon 08:00 Europe/Paris x", user=ADMIN)
    assert "not an environment" in bad.reply_text
    weekly = slack.command(FREEZE, "add production fri 16:00 mon 08:00 Europe/Paris Weekend",
                           user=ADMIN)
    assert "every week from fri 16:00 to mon 08:00 Europe/Paris" in weekly.reply_text


def test_break_glass_needs_two_admins_other_than_the_requester(slack):
    # given a freeze on development and a break-glass launch
    freeze_now(slack)
    launched = slack.command(RUN, 'ping local "--break-glass=outage fix INC-42"',
                             user=OPERATOR)
    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval and slack.queue.enqueued == []
    first, second = slack.tickets()
    assert first.title.startswith("Break glass (1/2)") and "INC-42" in first.description
    assert launched.posted  # the approval card
    [glass] = slack.audit("freeze.break_glass")
    assert glass.details["reason"] == "outage fix INC-42"

    def approve(user):
        return slack.click(ids.ACTION_APPROVAL_APPROVE, first.ticket_id, user=user,
                           channel=job.slack_channel_id, message_ts=job.slack_message_ts)

    # when one admin approves, the job still waits
    approve(ADMIN)
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval
    assert slack.queue.enqueued == []
    # the same admin cannot approve twice
    again = approve(ADMIN)
    assert "second admin" in again.reply_text
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval
    # a second admin releases it
    approve(OTHER_ADMIN)
    assert slack.job(job.job_id).status == JobStatus.pending
    assert slack.queue.enqueued == [job.job_id]


def test_a_break_glass_without_a_reason_is_refused(slack):
    freeze_now(slack)
    result = slack.command(RUN, "ping local --break-glass", user=OPERATOR)
    assert "needs a reason" in result.reply_text and slack.jobs() == []
