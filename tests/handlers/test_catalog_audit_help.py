"""Servers, playbooks, the audit trail, `/playbot` and App Home — for every role."""

from __future__ import annotations

import pytest

from db.models import JobStatus
from slackui import ids
from slackui.limits import MAX_MESSAGE_BLOCKS, MAX_SECTION_TEXT
from tests.handlers.fixtures import ADMIN, INACTIVE, OPERATOR, VIEWER
from tests.handlers.test_jobs import add_job

ROLES = [VIEWER, OPERATOR, ADMIN]


@pytest.mark.parametrize("user", ROLES)
def test_everyone_lists_servers_filtered_by_environment_and_tag(slack, user):
    production = slack.command(ids.CMD_SERVERS, "env:production", user=user).reply_text
    web = slack.command(ids.CMD_SERVERS, "tag:web", user=user).reply_text

    assert "prod-local" in production and "stage-01" not in production
    assert "local" in web and "stage-01" in web and "prod-local" not in web
    assert len(slack.audit("servers.list")) == 2


def test_show_a_server_with_its_recent_jobs(slack):
    job_id = add_job(slack, host="stage-01")

    result = slack.command(ids.CMD_SERVERS, "show stage-01", user=VIEWER)

    assert "Server stage-01" in result.reply_text and "staging" in result.reply_text
    assert job_id[:8] in result.reply_text


def test_a_local_server_shows_no_ssh_address(slack):
    text = slack.command(ids.CMD_SERVERS, "show local", user=VIEWER).reply_text

    assert "runs on the worker itself" in text and ":22" not in text


def test_mistyped_server_environment_and_option_get_suggestions(slack):
    host = slack.command(ids.CMD_SERVERS, "show stage-1", user=VIEWER).reply_text
    option = slack.command(ids.CMD_SERVERS, "shwo local", user=VIEWER).reply_text
    environment = slack.command(ids.CMD_SERVERS, "env:prd", user=VIEWER).reply_text

    assert "Did you mean" in environment and "production" in environment

    assert "stage-01" in host
    assert "Did you mean: show" in option


@pytest.mark.parametrize("user", ROLES)
def test_everyone_lists_and_shows_playbooks(slack, user):
    listing = slack.command(ids.CMD_PLAYBOOKS, "tag:web", user=user).reply_text
    details = slack.command(ids.CMD_PLAYBOOKS, "show deploy", user=user).reply_text

    assert "deploy" in listing and "ping" not in listing
    assert "`version` (string, required" in details
    assert "one of blue/green" in details
    assert "PLAYBOT_VAR_DB_PASSWORD" in details


def test_mistyped_playbook_name_in_show(slack):
    result = slack.command(ids.CMD_PLAYBOOKS, "show deplyo", user=VIEWER)

    assert "Did you mean: deploy" in result.reply_text


def test_admin_reads_the_audit_trail_of_a_job(slack):
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    [job] = slack.jobs()
    slack.command(ids.CMD_CANCEL, job.job_id[:8], user=OPERATOR)

    result = slack.command(ids.CMD_AUDIT, f"job {job.job_id[:8]}", user=ADMIN)

    text = result.reply_text
    short = job.job_id[:8]
    assert f"launched job {short}" in text and f"cancelled job {short}" in text
    assert "alice" in text and "{\"" not in text  # one readable line each, no JSON
    assert text.index("cancelled job") < text.index("launched job")  # newest first
    [row] = slack.audit("audit.view")
    assert row.resource_id == job.job_id[:8] and row.details["outcome"] == "allowed"


def test_a_jobs_audit_trail_includes_its_approval_and_the_approval_has_its_own(slack):
    # given a production run approved by an admin
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=OPERATOR)
    [job] = slack.jobs()
    [ticket] = slack.tickets()
    slack.click(ids.ACTION_APPROVAL_APPROVE, ticket.ticket_id, user=ADMIN)

    job_trail = slack.command(ids.CMD_AUDIT, f"job {job.job_id[:8]}", user=ADMIN).reply_text
    approval = slack.command(ids.CMD_AUDIT, f"approval {ticket.ticket_id[:8]}",
                             user=ADMIN).reply_text

    assert f"approved ticket {ticket.ticket_id[:8]}" in job_trail
    assert f"launched job {job.job_id[:8]}" in job_trail
    assert "With its approval request and tickets" in job_trail
    assert f"approved ticket {ticket.ticket_id[:8]}" in approval


def test_a_users_audit_trail_shows_what_they_did_and_details_on_demand(slack):
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local version=1", user=OPERATOR)
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)

    trail = slack.command(ids.CMD_AUDIT, "user alice", user=ADMIN).reply_text
    detailed = slack.command(ids.CMD_AUDIT, "user alice details", user=ADMIN).reply_text

    assert "What they did" in trail and "launched job" in trail
    assert "refused" in trail  # the first launch set an undeclared variable
    assert "/audit user alice details" in trail
    assert "target: `local`" in detailed


def test_entries_without_a_person_say_where_they_came_from(slack):
    from core import audit
    from db.session import transaction

    with transaction(slack.session_factory) as session:
        audit.record(session, user=None, action="server.update", resource_type="server",
                     resource_id="local", details={"via": "cli", "os_user": "root"})
        audit.record(session, user=None, action="server.update", resource_type="server",
                     resource_id="local", details={})

    text = slack.command(ids.CMD_AUDIT, "server local", user=ADMIN).reply_text

    assert "CLI (root)" in text and "Playbot (automatic)" in text and "unknown" not in text


@pytest.mark.parametrize("user", [VIEWER, OPERATOR])
def test_only_admins_read_the_audit_trail(slack, user):
    result = slack.command(ids.CMD_AUDIT, "server local", user=user)

    assert "admin" in result.reply_text
    [row] = slack.audit("audit.view")
    assert row.details["outcome"] == "denied"


def test_audit_with_a_mistyped_resource_type(slack):
    result = slack.command(ids.CMD_AUDIT, "sever local", user=ADMIN)

    assert "Did you mean: server" in result.reply_text


@pytest.mark.parametrize("user, role", [(VIEWER, "viewer"), (OPERATOR, "operator"),
                                        (ADMIN, "admin")])
def test_help_lists_every_command_and_the_callers_role(slack, user, role):
    result = slack.command(ids.CMD_PLAYBOT, "help", user=user)

    for command in ids.ALL_COMMANDS:
        assert command in result.reply_text
    assert f"You are *{role}*" in result.reply_text
    # it says each thing once: no line repeats its command's usage or its role
    assert "(admins) _(admins)_" not in result.reply_text
    assert "`/jobs` recent" not in result.reply_text
    [row] = slack.audit("help")
    assert row.details["outcome"] == "allowed"


def test_playbot_without_words_is_help_and_whoami_tells_the_role(slack):
    assert "Playbot commands" in slack.command(ids.CMD_PLAYBOT, "", user=VIEWER).reply_text
    assert "role *operator*" in slack.command(ids.CMD_PLAYBOT, "whoami",
                                              user=OPERATOR).reply_text


def test_mistyped_playbot_subcommand_gets_the_closest(slack):
    result = slack.command(ids.CMD_PLAYBOT, "hlep", user=VIEWER)

    assert "Did you mean: help" in result.reply_text


def test_playbot_runs_the_other_commands_too(slack):
    add_job(slack, status=JobStatus.failed)

    failed = slack.command(ids.CMD_PLAYBOT, "jobs failed", user=VIEWER)
    run = slack.command(ids.CMD_PLAYBOT, "run ping local", user=OPERATOR)

    assert "Failed jobs" in failed.reply_text
    assert len(slack.jobs()) == 2 and len(run.posted) == 1


def test_inactive_user_is_refused_everywhere(slack):
    result = slack.command(ids.CMD_JOBS, "", user=INACTIVE)

    assert "deactivated" in result.reply_text
    [row] = slack.audit("jobs.list")
    assert row.details["outcome"] == "denied"


def test_app_home_shows_my_jobs_running_jobs_tickets_and_stats(slack):
    mine = add_job(slack, status=JobStatus.success)
    running = add_job(slack, status=JobStatus.running, user=ADMIN, host="stage-01")

    result = slack.open_home(OPERATOR)

    [call] = result.calls_to("views.publish")
    assert call.params["user_id"] == OPERATOR
    view = slack.fake.home_views[OPERATOR]
    text = str(view)
    assert view["type"] == "home"
    assert mine[:8] in text and running[:8] in text
    assert "Open tickets" in text and "Last 7 days" in text
    assert slack.audit() == []  # opening a tab is not a chat action


def test_long_lists_stay_within_slack_limits(slack):
    for _ in range(40):
        add_job(slack, status=JobStatus.failed)
    long_one = add_job(slack, status=JobStatus.failed, logs=["x" * 500] * 30,
                       error="e" * 5000)

    listing = slack.command(ids.CMD_JOBS, "failed", user=VIEWER)
    details = slack.command(ids.CMD_JOB, long_one, user=VIEWER)

    for result in (listing, details):
        blocks = result.replies[0].blocks
        assert len(blocks) <= MAX_MESSAGE_BLOCKS
        for block in blocks:
            assert len(block.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT
    assert "and 21 more jobs" in listing.reply_text  # 41 failed, 20 shown


def test_a_direct_message_to_the_bot_is_answered_with_help_and_its_own_messages_are_not(slack):
    # given a person writing in the bot's Messages tab, then the bot's own message and an edit
    dm = f"D_{OPERATOR}"
    asked = slack.event({"type": "message", "channel_type": "im", "channel": dm,
                         "user": OPERATOR, "text": "how do I deploy?", "ts": "1.000001"},
                        user=OPERATOR)
    own = slack.event({"type": "message", "channel_type": "im", "channel": dm,
                       "bot_id": "B_PLAYBOT", "text": "Playbot commands", "ts": "1.000002"},
                      user=OPERATOR)
    edited = slack.event({"type": "message", "subtype": "message_changed",
                          "channel_type": "im", "channel": dm, "ts": "1.000003"}, user=OPERATOR)

    # then the person gets the command reference in that DM, for their role; nothing else
    [answer] = asked.calls_to("chat.postMessage")
    assert answer.params["channel"] == dm
    text = str(answer.params["blocks"])
    assert "/run-playbook" in text and "You are *operator*" in text
    assert own.calls_to("chat.postMessage") == [] and edited.calls_to("chat.postMessage") == []
    assert slack.audit() == []
