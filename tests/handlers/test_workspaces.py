"""Requests from outside the Slack install — another workspace, another Grid organisation, a
Slack Connect user from another organisation in a shared channel — are refused before anyone
is provisioned, through the real HTTP app; and every audit row a request writes carries its
team, enterprise, channel and one request id."""

from __future__ import annotations

import pytest

from bot.fake_slack import FakeSlack, SlackSender
from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR
from tests.handlers.harness import SIGNING_SECRET

RUN = ids.CMD_RUN_PLAYBOOK
FOREIGN_TEAM = "T_ELSEWHERE"


def _sender_for(slack, team_id: str) -> SlackSender:
    return SlackSender(slack.server.events_url, SIGNING_SECRET, slack.fake, team_id=team_id)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_slash_command_from_another_workspace_is_refused_and_nobody_is_provisioned(slack,
                                                                                    caplog):
    # given: the install is FakeSlack's workspace (learned from auth.test at start)
    elsewhere = _sender_for(slack, FOREIGN_TEAM)

    # when: a user of another workspace runs a playbook
    result = slack._run(lambda: elsewhere.command(RUN, "ping local", user="U_STRANGER",
                                                  user_name="stranger"), "U_STRANGER")

    # then: refused with a clear message, no account, no job, one denial row without a user
    assert result.status == 200
    assert "another Slack workspace" in result.reply_text
    assert slack.user("U_STRANGER") is None
    assert slack.jobs() == []
    [row] = slack.audit()
    assert row.user_id is None and row.details["outcome"] == "denied"
    assert row.details["reason"] == "ForeignWorkspace"
    assert row.details["slack_user_id"] == "U_STRANGER"
    assert row.team_id == FOREIGN_TEAM
    assert any("refused a command from outside the install: user U_STRANGER" in r.message
               and FOREIGN_TEAM in r.message for r in caplog.records)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_slack_connect_user_clicking_show_is_refused_and_sees_no_output(slack):
    # given: a job of ours, its message in a channel shared with another organisation
    slack.command(RUN, "ping local", user=OPERATOR)
    [job] = slack.jobs()
    before = len(slack.audit())

    # when: an external user (their own team is another organisation's) clicks Show
    result = slack.click(ids.ACTION_JOB_SHOW, job.job_id, user="U_EXTERNAL",
                         user_team=FOREIGN_TEAM)

    # then: a clear refusal, nothing of the job shown, no account made
    assert "Slack Connect" in result.reply_text
    assert job.job_id[:8] not in result.reply_text
    assert "ping" not in result.reply_text
    assert slack.user("U_EXTERNAL") is None
    [row] = slack.audit()[before:]
    assert row.user_id is None and row.details["outcome"] == "denied"
    assert row.details["user_team_id"] == FOREIGN_TEAM


def test_a_request_from_another_grid_organisation_is_refused(slack_settings, request):
    # given: an install configured for one Grid organisation
    slack_settings.update(playbot_slack_team_id=FakeSlack.TEAM_ID,
                          playbot_slack_enterprise_id="EPLAYBOT")
    slack = request.getfixturevalue("slack")

    # when: a command from the same-named workspace but no organisation (or another one)
    result = slack.command(RUN, "ping local", user=OPERATOR)

    # then
    assert "another Slack organisation" in result.reply_text
    assert slack.jobs() == []


def test_every_audit_row_of_one_request_carries_team_channel_and_one_request_id(slack):
    # when: an operator launches on a tag (one request, one launch row per job)
    slack.command(RUN, "ping tag:web", user=OPERATOR, channel="C_DEPLOYS")
    first = slack.audit("job.launch")
    # and a second request
    slack.command(ids.CMD_JOBS, "", user=ADMIN, channel="C_OPS")

    # then: the first request's rows share one request id, with the team and channel
    assert len(first) == 2
    assert {row.request_id for row in first} == {first[0].request_id}
    assert first[0].request_id and len(first[0].request_id) == 32
    assert {row.team_id for row in first} == {FakeSlack.TEAM_ID}
    assert {row.channel_id for row in first} == {"C_DEPLOYS"}
    second = [row for row in slack.audit() if row.request_id != first[0].request_id]
    assert second and all(row.channel_id == "C_OPS" for row in second)
    assert all(job.status == JobStatus.pending for job in slack.jobs())
