"""The Bolt app factory: every id has a listener, one global error handler answers users,
configuration problems stop it at start."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from bot.runtime import build_runtime
from bot.settings import Settings
from bot.socket_mode import SocketModeConfigError, run_socket_mode
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.fixtures import OPERATOR, VIEWER, app_settings
from tests.handlers.harness import RecordingQueue, select_value, text_value
from workers.broker import reset_broker


@pytest.mark.parametrize("action_id", sorted(ids.ALL_ACTION_IDS))
def test_every_action_id_has_a_listener(slack, action_id):
    result = slack.click(action_id, "deadbeef", user=VIEWER)

    assert result.status == 200  # Bolt answers 404 to a request no listener matches


@pytest.mark.parametrize("callback_id", sorted(ids.ALL_CALLBACK_IDS - {ids.VIEW_JOB_DETAILS}))
def test_every_submittable_modal_has_a_listener(slack, callback_id):
    view = {"id": "V1", "callback_id": callback_id, "type": "modal", "blocks": [],
            "private_metadata": ""}

    result = slack.submit(view, {}, user=VIEWER)

    assert result.status == 200


@pytest.mark.parametrize("command", sorted(ids.ALL_COMMANDS))
def test_every_command_has_a_listener(slack, command):
    result = slack.command(command, "help", user=VIEWER)

    assert result.status == 200
    assert result.reply_text  # every command answers something, even to "help"


def test_an_unexpected_error_is_logged_and_the_user_gets_a_reference(slack, caplog):
    # given: the database lost a table (a broken migration, a bad restore)
    with transaction(slack.session_factory) as session:
        session.execute(text("DROP TABLE job_logs"))
        session.execute(text("ALTER TABLE jobs RENAME TO jobs_gone"))

    # when
    with caplog.at_level(logging.ERROR, logger="playbot.handlers"):
        result = slack.command(ids.CMD_JOBS, "", user=OPERATOR)

    # then: the user hears something useful, the log has the traceback and the reference
    assert "Something went wrong inside Playbot" in result.reply_text
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert record.exc_info is not None
    reference = record.getMessage().split("ref=")[1].split()[0]
    assert reference in result.reply_text


def test_an_error_before_the_ack_still_answers_inside_the_ack(slack, caplog):
    # given: the modal's pre-ack check will hit a broken table
    with transaction(slack.session_factory) as session:
        session.execute(text("ALTER TABLE playbooks RENAME TO playbooks_gone"))
    view = {"id": "V9", "callback_id": ids.VIEW_RUN_PLAYBOOK, "type": "modal",
            "private_metadata": "{}",
            "blocks": [{"type": "input", "block_id": ids.BLOCK_RUN_PLAYBOOK,
                        "element": {"action_id": ids.ACTION_MODAL_PLAYBOOK_SELECT}},
                       {"type": "input", "block_id": ids.BLOCK_RUN_TARGET,
                        "element": {"action_id": ids.ACTION_INPUT_VALUE}}]}

    with caplog.at_level(logging.ERROR, logger="playbot.handlers"):
        result = slack.submit(view, {ids.BLOCK_RUN_PLAYBOOK: select_value("ping"),
                                     ids.BLOCK_RUN_TARGET: text_value("local")}, user=OPERATOR)

    assert result.status == 200
    assert result.ack["response_action"] == "errors"
    assert "Something went wrong" in str(result.ack["errors"])


def test_the_app_refuses_to_start_without_token_and_signing_secret(fake_slack, playbook_dir,
                                                                   app_sqlite_url):
    settings = app_settings(app_sqlite_url, fake_slack, playbook_dir, slack_signing_secret=None)

    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        build_runtime(settings, queue=RecordingQueue())


def test_a_runtime_built_from_settings_alone_acks_first_and_talks_to_slack_api_url(
        fake_slack, playbook_dir, app_sqlite_url):
    # REDIS_URL unset: the workers' in-process broker
    settings = app_settings(app_sqlite_url, fake_slack, playbook_dir)
    runtime = build_runtime(settings)
    try:
        app = runtime.app
        assert app is not None
        assert app.process_before_response is True
        assert app.client.base_url == fake_slack.api_url
    finally:
        runtime.close()
        reset_broker()


def test_starting_with_slack_bot_token_in_the_environment_logs_no_bolt_token_warning(
        fake_slack, playbook_dir, app_sqlite_url, monkeypatch, caplog):
    # `playbot web` runs with SLACK_BOT_TOKEN set; Bolt reads it as well as our client
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    settings = app_settings(app_sqlite_url, fake_slack, playbook_dir)
    with caplog.at_level(logging.WARNING):
        runtime = build_runtime(settings)
    try:
        assert "will be unused" not in caplog.text
    finally:
        runtime.close()
        reset_broker()


@pytest.mark.parametrize("token, message", [(None, "SLACK_APP_TOKEN is not set"),
                                            ("xoxb-123", "must be an app-level token")])
def test_socket_mode_refuses_to_start_without_an_app_token(slack, token, message):
    slack.runtime.settings = Settings(**{**slack.runtime.settings.model_dump(),
                                         "slack_app_token": token})

    with pytest.raises(SocketModeConfigError, match=message):
        run_socket_mode(slack.runtime)


def test_the_default_client_waits_out_slacks_rate_limit(fake_slack, playbook_dir,
                                                        app_sqlite_url):
    # given: the runtime builds its own client (SLACK_API_URL), and Slack answers 429 once
    from bot.web import make_server
    from tests.handlers.fixtures import seed
    from tests.handlers.harness import SlackHarness

    runtime = build_runtime(app_settings(app_sqlite_url, fake_slack, playbook_dir),
                            queue=RecordingQueue())
    harness = SlackHarness(fake_slack, runtime, make_server(runtime).start(), runtime.queue)
    seed(runtime.session_factory, playbook_dir)
    try:
        fake_slack.rate_limit(1, retry_after=1)

        result = harness.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    finally:
        harness.close()

    # then: the job message was posted after Retry-After
    assert result.calls_to("chat.postMessage:429")
    assert len(result.posted) == 1
