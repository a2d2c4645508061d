"""Text that can never become Slack markup: a hostile string typed into commands, modals and
notes, or echoed by a failed task, reaches Slack escaped everywhere Slack reads markup (a
message's `text`, mrkdwn blocks, modals), so it never mentions, pings or links; usage hints'
placeholders render; Slack's escaping of slash-command text is undone before parsing.

Everything goes through the real HTTP app, signed as Slack signs it, with the command text
escaped the way Slack escapes it (`bot.fake_slack.slack_escaped`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, VIEWER
from tests.handlers.harness import Result, text_value
from tests.handlers.test_jobs import add_job
from tests.handlers.test_run_modal import choose, deploy_values, open_modal
from tests.handlers.test_tickets import incident

HOSTILE = "<!channel> <@U123> <https://evil.example|click>"
# What must never reach Slack where it reads markup: each would ping, mention or link.
LIVE_MARKUP = ("<!channel>", "<@U123>", "<https://evil", "<!here>")


def markup_texts(result: Result) -> Iterator[str]:
    """Every string of what the app sent that Slack parses for markup: messages' `text`,
    mrkdwn objects in blocks and views (plain_text is never parsed)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and "text" in node:
                yield str(node["text"])
                return
            if node.get("type") == "plain_text":
                return
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    ack = result.ack
    if isinstance(ack, dict):
        yield str(ack.get("text") or "")
        yield from walk(ack.get("blocks"))
    for call in result.calls:
        params = call.params
        if params.get("text"):
            yield str(params["text"])
        for key in ("blocks", "view", "initial_comment"):
            value = params.get(key)
            if isinstance(value, str) and value[:1] in "[{":
                value = json.loads(value)
            if key == "initial_comment" and isinstance(value, str):
                yield value
            else:
                yield from walk(value)


def assert_inert(result: Result) -> str:
    """No live markup anywhere Slack reads it; returns all of that text joined."""
    texts = list(markup_texts(result))
    joined = "\n".join(texts)
    for token in LIVE_MARKUP:
        assert token not in joined, f"{token!r} reached Slack as markup:\n{joined}"
    return joined


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_hostile_playbook_name_comes_back_escaped_in_the_error(slack):
    # when
    result = slack.command(ids.CMD_RUN_PLAYBOOK, f"'{HOSTILE}' local", user=OPERATOR)

    # then: the refusal quotes it, escaped, so Slack shows it and does nothing
    shown = assert_inert(result)
    assert "&lt;!channel&gt;" in shown and "is not registered" in result.reply_text
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


def test_usage_hints_keep_their_placeholders(slack):
    # when
    result = slack.command(ids.CMD_JOB, "", user=VIEWER)

    # then: `<job id>` is sent as &lt;job id&gt;, which Slack shows as <job id>
    shown = assert_inert(result)
    assert "`/job &lt;job id&gt;`" in shown


def test_slacks_escaping_is_undone_before_parsing_and_redone_on_the_way_out(slack):
    # when: a value with & < > (Slack sends it as &amp; &lt; &gt;)
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=1<2&3", user=OPERATOR)

    # then: the pattern check saw the real characters and quotes them, escaped once
    shown = assert_inert(result)
    assert "1&lt;2&amp;3" in shown
    assert "&amp;lt;" not in shown


def test_escaped_forms_typed_by_the_user_stay_literal(slack):
    # when: the user types the entity itself (Slack sends &amp;lt;!channel&amp;gt;)
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "&lt;!channel&gt; local", user=OPERATOR)

    # then: it is shown as typed, never decoded into markup
    shown = assert_inert(result)
    assert "&amp;lt;!channel&amp;gt;" in shown


def test_a_failed_task_echoing_a_variable_is_escaped_in_every_view_of_the_job(slack):
    # given: a failed job whose error message echoes a hostile variable value
    job_id = add_job(slack, status=JobStatus.failed,
                     error=f"Task 'show' failed on local: msg: hello {HOSTILE}",
                     logs=[f"fatal: [local]: FAILED! => {{\"msg\": \"hello {HOSTILE}\"}}"])

    # when: it is shown by command and by the Show button
    by_command = slack.command(ids.CMD_JOB, job_id[:8], user=VIEWER)
    by_button = slack.click(ids.ACTION_JOB_SHOW, job_id, user=VIEWER)

    # then
    for result in (by_command, by_button):
        shown = assert_inert(result)
        assert "hello &lt;!channel&gt;" in shown


def test_a_hostile_resolution_note_is_escaped_in_the_ticket_message(slack):
    # given
    ticket_id = incident(slack)

    # when
    result = slack.command(ids.CMD_TICKETS, f"resolve {ticket_id[:8]} fixed {HOSTILE}",
                           user=OPERATOR)

    # then: the redrawn ticket message and the reply hold it escaped
    shown = assert_inert(result)
    assert "resolved" in result.reply_text
    assert "&lt;@U123&gt;" in shown or not result.updated


def test_a_hostile_audit_reference_is_escaped(slack):
    result = slack.command(ids.CMD_AUDIT, f"job {HOSTILE}", user=ADMIN)

    assert_inert(result)
    assert result.reply_text


def test_a_hostile_target_in_the_modal_stays_inert(slack):
    # given
    view = choose(slack, open_modal(slack), "deploy")

    # when: the target field holds the hostile text
    result = slack.submit(view, deploy_values(**{ids.BLOCK_RUN_TARGET: text_value(HOSTILE)}),
                          user=OPERATOR)

    # then: a field error (plain text, never parsed by Slack), nothing run, nothing parsed
    assert_inert(result)
    assert ids.BLOCK_RUN_TARGET in result.ack["errors"]
    assert slack.jobs() == []


def test_a_command_whose_text_says_payload_is_answered(slack):
    # when: Bolt would read any form body containing "payload" as an interaction
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy web-01 note=payload", user=OPERATOR)

    # then: it is parsed as the slash command it is, and answered
    assert result.status == 200
    assert "Received: *deploy* on *web-01*" in result.ack_text
    assert "`note` is not a variable" in result.reply_text
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


@pytest.mark.parametrize(("command", "text"), [
    (ids.CMD_PLAYBOT, "help"), (ids.CMD_SERVERS, ""), (ids.CMD_PLAYBOOKS, ""),
    (ids.CMD_PLAYBOOKS, "show deploy"), (ids.CMD_TICKETS, ""), (ids.CMD_JOBS, ""),
])
def test_every_usage_hint_placeholder_renders(slack, command, text):
    # given: a ticket and a job, so the lists have their hints
    incident(slack)

    # when
    result = slack.command(command, text, user=ADMIN)

    # then: no `<name>`-style placeholder reaches Slack raw (Slack would swallow it)
    shown = assert_inert(result)
    raw = re.findall(r"<[a-z][a-z _|-]*>", shown)
    assert not raw, raw
    assert "&lt;" in shown
