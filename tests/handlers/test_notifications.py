"""Notification settings from Slack: `/notify`, approval requests sent to the admins who can
approve them, the requester's DM with the decision, quiet hours and channel routes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from db.base import utcnow
from db.models import Job, JobStatus
from slackui import ids
from tests.handlers.fixtures import ADMIN, BOT_TOKEN, OPERATOR, OTHER_ADMIN, VIEWER
from workers.config import WorkerConfig
from workers.notifications import notify_endings

NOTIFY = ids.CMD_NOTIFY


def dms(result, user):
    return [c.params["text"] for c in result.calls_to("chat.postMessage")
            if c.params.get("channel") == f"D_{user}"]


def request_production_run(slack, user=OPERATOR):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=user, channel="C_DEV")
    [ticket] = slack.tickets()
    return result, ticket


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_an_approval_request_reaches_every_admin_and_the_decision_reaches_the_requester(slack):
    # when an operator asks for a production run in #dev
    result, ticket = request_production_run(slack)
    # then both admins get a DM pointing at the request; the requester does not
    for admin in (ADMIN, OTHER_ADMIN):
        [text] = dms(result, admin)
        assert "Approval waiting for you" in text and "@alice" in text and "prod-local" in text
    assert dms(result, OPERATOR) == []
    # when an admin approves it, the requester gets a DM with the decision
    [job] = slack.jobs()
    approved = slack.click(ids.ACTION_APPROVAL_APPROVE, ticket.ticket_id, user=ADMIN,
                           channel=job.slack_channel_id, message_ts=job.slack_message_ts)
    [decision] = dms(approved, OPERATOR)
    assert "was approved by @bob" in decision


def test_an_admin_in_quiet_hours_or_without_the_event_is_not_sent_the_request(slack):
    now = utcnow()
    quiet = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
    saved = slack.command(NOTIFY, f"quiet={quiet} tz=UTC", user=ADMIN)
    assert "Quiet hours" in saved.reply_text and quiet in saved.reply_text
    slack.command(NOTIFY, "events=job_ended", user=OTHER_ADMIN)
    result, _ = request_production_run(slack)
    assert dms(result, ADMIN) == [] and dms(result, OTHER_ADMIN) == []
    assert [r.action for r in slack.audit("notify.update")] == ["notify.update"] * 2


def test_notify_shows_and_validates_ones_own_settings(slack):
    shown = slack.command(NOTIFY, "", user=VIEWER)
    assert "approval_waiting" in shown.reply_text and "a DM" in shown.reply_text
    bad = slack.command(NOTIFY, "events=everything", user=VIEWER)
    assert "Unknown event `everything`" in bad.reply_text
    bad = slack.command(NOTIFY, "quiet=late", user=VIEWER)
    assert "HH:MM-HH:MM" in bad.reply_text
    ok = slack.command(NOTIFY, "events=job_failed env=production playbook=deploy", user=VIEWER)
    assert "`production`" in ok.reply_text and "`deploy`" in ok.reply_text


def test_only_admins_route_events_to_a_channel_and_the_route_gets_approval_requests(slack):
    refused = slack.command(NOTIFY, "channel <#C_APPROVALS|approvals> events=approval_waiting",
                            user=OPERATOR)
    assert "admin" in refused.reply_text
    routed = slack.command(NOTIFY, "channel <#C_APPROVALS|approvals> events=approval_waiting",
                           user=ADMIN)
    assert "now gets: approval_waiting" in routed.reply_text
    result, _ = request_production_run(slack)
    posted = [c.params["text"] for c in result.calls_to("chat.postMessage")
              if c.params.get("channel") == "C_APPROVALS"]
    assert posted and "Approval waiting" in posted[0]
    denied, row = slack.audit("notify.route")
    assert denied.details["outcome"] == "denied"
    assert (row.resource_id, row.details["outcome"]) == ("C_APPROVALS", "allowed")


def test_the_clock_tells_the_requester_a_job_ended_and_failure_routes_once(slack):
    # given alice wants her endings, bob wants production failures, #alerts gets failures
    slack.command(NOTIFY, "events=job_ended", user=OPERATOR)
    slack.command(NOTIFY, "events=job_failed env=production", user=ADMIN)
    slack.command(NOTIFY, "channel C_ALERTS events=job_failed", user=ADMIN)
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    [job] = slack.jobs()
    now = utcnow()
    with slack.session_factory() as session:
        session.execute(update(Job).values(status=JobStatus.failed, completed_at=now,
                                           active_fingerprint=None,
                                           error_message="task ping failed on local"))
        session.commit()
    settings = slack.runtime.settings
    config = WorkerConfig(database_url=settings.database_url, slack_token=BOT_TOKEN,
                          slack_api_url=settings.slack_api_url)
    # when the clock passes twice
    before = len(slack.fake.calls)
    first = notify_endings(config, now=now + timedelta(seconds=5))
    second = notify_endings(config, now=now + timedelta(seconds=10))
    # then alice's DM and #alerts, once; bob's filter (production) does not match
    posts = [c.params for c in slack.fake.calls[before:] if c.method == "chat.postMessage"]
    assert (first, second) == (2, 0)
    assert sorted(p["channel"] for p in posts) == ["C_ALERTS", f"D_{OPERATOR}"]
    assert all("failed: task ping failed on local" in p["text"] for p in posts)
