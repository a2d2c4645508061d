"""`/run-playbook`: launching from chat, denials, typos, retries, channels the bot is not in,
and a queue that is down — all through the real HTTP app and FakeSlack."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import JobStatus, Playbook
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, INACTIVE, OPERATOR, VIEWER

RUN = ids.CMD_RUN_PLAYBOOK


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_operator_runs_a_playbook_and_the_job_is_posted_and_queued(slack):
    # when
    result = slack.command(RUN, "ping local", user=OPERATOR, channel="C_OPS")

    # then: the ack says what is starting, at once
    assert result.status == 200
    assert "Received: *ping* on *local*" in result.ack_text
    # one pending job, its message in the channel, recorded, and handed to the queue
    [job] = slack.jobs()
    assert job.status == JobStatus.pending
    assert job.playbook.name == "ping" and job.server.hostname == "local"
    [posted] = result.posted
    assert posted.channel == "C_OPS"
    assert "ping" in result.posted_text and "local" in result.posted_text
    assert job.slack_channel_id == "C_OPS" and job.slack_message_ts
    assert slack.queue.enqueued == [job.job_id]
    assert job.dramatiq_message_id == "msg-1"
    # one audit row, with what Slack's request carried
    [row] = slack.audit("job.launch")
    assert row.resource_id == job.job_id
    assert row.details["outcome"] == "allowed"
    assert row.user_agent.startswith("Slackbot")
    assert row.ip_address == "127.0.0.1"


def test_viewer_is_denied_and_the_denial_is_audited(slack):
    result = slack.command(RUN, "ping local", user=VIEWER)

    assert "operator role" in result.reply_text
    assert slack.jobs() == []
    assert slack.queue.enqueued == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"
    assert row.user_id == slack.user(VIEWER).id


def test_inactive_user_is_refused_with_a_clear_message(slack):
    result = slack.command(RUN, "ping local", user=INACTIVE)

    assert "deactivated" in result.reply_text
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_unknown_user_is_provisioned_as_viewer_and_cannot_run(slack):
    result = slack.command(RUN, "ping local", user="U_NEWBIE", user_name="newbie")

    assert "operator role" in result.reply_text
    # the refused request rolled back, but the account stays for an admin to promote
    newbie = slack.user("U_NEWBIE")
    assert newbie is not None and newbie.role.value == "viewer"
    [row] = slack.audit("job.launch")
    assert row.user_id == newbie.id and row.details["outcome"] == "denied"


def test_mistyped_playbook_gets_the_closest_names(slack):
    result = slack.command(RUN, "pnig local", user=OPERATOR)

    assert "Did you mean: ping" in result.reply_text
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"
    assert row.details["reason"] == "UnknownPlaybook"


def test_mistyped_server_and_flag_get_suggestions(slack):
    server = slack.command(RUN, "ping locl", user=OPERATOR)
    flag = slack.command(RUN, "ping local --chek", user=OPERATOR)

    assert "local" in server.reply_text and "Did you mean" in server.reply_text
    assert "--check" in flag.reply_text
    assert slack.jobs() == []


@pytest.mark.parametrize("assignment, expected", [
    ("version=1.2 replicas=abc", "whole number"),
    ("version=1.2 ansible_host=evil", "refused"),
    ("version=1.2 api_token=abc", "secret"),
    ("replicas=3", "`version` is required"),
    ("version=1.2 env_name=purple", "blue"),
])
def test_bad_extra_vars_are_refused_with_a_reason(slack, assignment, expected):
    result = slack.command(RUN, f"deploy local {assignment}", user=OPERATOR)

    assert expected in result.reply_text
    assert slack.jobs() == []


def test_values_are_kept_as_data_and_typed(slack):
    result = slack.command(RUN, "deploy local version=1.2 replicas=3 dry_run=yes", user=OPERATOR)

    [job] = slack.jobs()
    assert job.extra_vars == {"version": "1.2", "replicas": 3, "dry_run": True,
                              "env_name": "blue"}
    # and the channel's job message shows what it runs with
    posted = [c for c in result.calls if c.method == "chat.postMessage"]
    shown = str(posted[-1].params["blocks"])
    assert "Variables: `dry_run=true` `env_name=blue` `replicas=3` `version=1.2`" in shown


def test_secret_never_reaches_the_audit_trail(slack):
    slack.command(RUN, "deploy local version=1.2 db_password=hunter2", user=OPERATOR)

    assert slack.jobs() == []
    rows = slack.audit()
    assert rows and all("hunter2" not in str(r.details) for r in rows)


def test_usage_is_explained_when_the_target_is_missing(slack):
    result = slack.command(RUN, "ping", user=OPERATOR)

    assert "target" in result.reply_text and "/run-playbook" in result.reply_text


def test_production_run_waits_for_approval_and_is_not_queued(slack):
    result = slack.command(RUN, "ping prod-local", user=OPERATOR)

    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval
    assert slack.queue.enqueued == []
    assert "Approve" in result.posted_text and "Reject" in result.posted_text
    assert "approval" in result.reply_text
    [ticket] = slack.tickets()
    assert ticket.slack_message_ts == job.slack_message_ts


def test_check_mode_on_production_needs_approval_like_any_run(slack):
    # when: check mode is not read-only (`check_mode: false` tasks run), so it is no exemption
    result = slack.command(RUN, "ping prod-local --check", user=OPERATOR)

    # then
    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval and job.check_mode
    assert slack.queue.enqueued == []
    assert "Approve" in result.posted_text
    assert "unless its playbook is declared check-safe" in result.reply_text
    [ticket] = slack.tickets()
    assert ticket.job.job_id == job.job_id


def test_check_mode_of_a_check_safe_playbook_on_production_starts_at_once(slack):
    # given: ping's sidecar declares `check_safe: true` (registered as `playbooks sync` does)
    with transaction(slack.session_factory) as session:
        session.scalar(select(Playbook).where(Playbook.name == "ping")).check_safe = True

    # when
    slack.command(RUN, "ping prod-local --check", user=OPERATOR)

    # then
    [job] = slack.jobs()
    assert job.status == JobStatus.pending and job.check_mode
    assert slack.queue.enqueued == [job.job_id]


def test_a_tag_target_makes_one_job_per_server_in_one_run(slack):
    result = slack.command(RUN, "ping tag:web", user=OPERATOR)

    jobs = slack.jobs()
    assert sorted(j.server.hostname for j in jobs) == ["local", "stage-01"]
    assert len({j.run_id for j in jobs}) == 1
    assert len(result.posted) == 1  # one message per run (tests/handlers/test_runs.py)
    assert slack.queue.enqueued == [jobs[0].job_id]


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_retried_delivery_creates_no_second_job_and_links_the_first(slack):
    # given: Slack delivers the same command twice (same trigger), the second as a retry
    first = slack.command(RUN, "ping local", user=OPERATOR, trigger_id="trig-42")
    again = slack.command(RUN, "ping local", user=OPERATOR, trigger_id="trig-42",
                          extra_headers={"X-Slack-Retry-Num": "1",
                                         "X-Slack-Retry-Reason": "http_timeout"})

    # then
    [job] = slack.jobs()
    assert first.status == again.status == 200
    assert slack.queue.enqueued == [job.job_id]
    assert again.posted == []
    assert "already received" in again.reply_text
    assert "https://playbot.example/archives/C_OPS/" in again.reply_text


def test_running_the_same_thing_again_points_at_the_running_job(slack):
    slack.command(RUN, "ping local", user=OPERATOR)
    second = slack.command(RUN, "ping local", user=OPERATOR)

    assert len(slack.jobs()) == 1
    assert "already" in second.reply_text
    assert "https://playbot.example/archives/" in second.reply_text


def test_channel_the_bot_is_not_in_tells_the_user_and_uses_the_dm(slack):
    # given
    slack.fake.fail_channel("C_PRIVATE", "not_in_channel")

    # when
    result = slack.command(RUN, "ping local", user=OPERATOR, channel="C_PRIVATE")

    # then: the user learns how to fix it, and the job message is in their DM
    assert "/invite @Playbot" in result.reply_text
    [job] = slack.jobs()
    assert job.slack_channel_id == f"D_{OPERATOR}"
    assert slack.fake.channel_messages(f"D_{OPERATOR}")
    assert slack.queue.enqueued == [job.job_id]


@pytest.mark.parametrize("slack_settings", [{"playbot_jobs_channel": "C_JOBS"}])
def test_the_configured_jobs_channel_is_the_fallback(slack):
    slack.fake.fail_channel("D_SOMEONE_ELSE", "channel_not_found")

    result = slack.command(RUN, "ping local", user=OPERATOR, channel="D_SOMEONE_ELSE")

    [job] = slack.jobs()
    assert job.slack_channel_id == "C_JOBS"
    assert "<#C_JOBS>" in result.reply_text


def test_when_the_queue_is_down_the_job_stays_pending_and_says_so(slack):
    # given
    slack.queue.down = True

    # when
    started = time.monotonic()
    result = slack.command(RUN, "ping local", user=OPERATOR)

    # then: the ack came at once, the job is saved, waiting for the queue
    assert result.status == 200 and time.monotonic() - started < 3
    [job] = slack.jobs()
    assert job.status == JobStatus.pending and job.dramatiq_message_id is None
    assert job.slack_message_ts  # the job message exists
    [update] = result.updated
    assert "queue is unreachable" in str(update.params)


def test_no_arguments_opens_the_modal_with_the_trigger(slack):
    result = slack.command(RUN, "", user=OPERATOR, trigger_id="trig-modal")

    [call] = result.calls_to("views.open")
    assert call.params["trigger_id"] == "trig-modal"
    [view] = result.views
    assert view["callback_id"] == ids.VIEW_RUN_PLAYBOOK
    assert "ping" in str(view) and "deploy" in str(view)
    assert result.ack is None  # nothing to say before the form opens


def test_no_arguments_as_viewer_is_denied_without_a_modal(slack):
    result = slack.command(RUN, "", user=VIEWER)

    assert result.calls_to("views.open") == []
    assert "operator role" in result.reply_text


def test_admin_production_run_needs_another_admin(slack):
    slack.command(RUN, "ping prod-local", user=ADMIN)

    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval


@pytest.mark.parametrize("slack_settings", [{"playbot_admins_self_approve": True}])
def test_admins_may_be_exempted_for_small_teams(slack):
    slack.command(RUN, "ping prod-local", user=ADMIN)

    [job] = slack.jobs()
    assert job.status == JobStatus.pending


def test_quoted_values_keep_their_spaces_and_bad_quotes_are_explained(slack):
    bad = slack.command(RUN, 'deploy local version="1.2', user=OPERATOR)
    good = slack.command(RUN, "deploy local version=1.2 \u201cenv_name=green\u201d",
                         user=OPERATOR)

    assert "check your quotes" in bad.reply_text
    [row] = slack.audit("command")
    assert row.resource_id == RUN and row.details["outcome"] == "denied"
    assert len(good.posted) == 1
    [job] = slack.jobs()
    assert job.extra_vars["env_name"] == "green"


def test_the_ack_of_a_refused_request_says_received_and_the_refusal_follows(slack):
    # when: a viewer asks for a run they may not start
    result = slack.command(RUN, "ping local", user=VIEWER)

    # then: the instant reply only says it was received; the refusal comes after it
    assert "Received: *ping* on *local*" in result.ack_text
    assert "Starting" not in result.reply_text and "started" not in result.ack_text
    assert "operator role" in result.reply_text
    assert slack.jobs() == []


def test_the_ack_of_a_run_that_waits_for_approval_does_not_say_it_started(slack):
    # when
    result = slack.command(RUN, "ping prod-local", user=OPERATOR)

    # then
    assert "Received: *ping* on *prod-local*" in result.ack_text
    assert "Starting" not in result.reply_text
    assert "needs the approval of an admin" in result.reply_text
    [job] = slack.jobs()
    assert job.status == JobStatus.awaiting_approval
