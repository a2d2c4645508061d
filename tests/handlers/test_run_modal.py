"""The run-playbook modal round trip: open, choose a playbook (typed fields appear), submit a
bad value (field error, modal stays), submit good values (a job), submit twice (one job)."""

from __future__ import annotations

from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import OPERATOR
from tests.handlers.harness import (
    checkbox_value,
    number_value,
    select_value,
    text_value,
)

VAR = ids.BLOCK_VAR_PREFIX


def open_modal(slack, channel="C_OPS"):
    [view] = slack.command(ids.CMD_RUN_PLAYBOOK, "", user=OPERATOR, channel=channel).views
    return {**view, "id": "V_RUN_1", "hash": "h0"}


def choose(slack, view, playbook):
    result = slack.click(ids.ACTION_MODAL_PLAYBOOK_SELECT, "", user=OPERATOR, view=view,
                         action={"type": "static_select",
                                 "selected_option": {"value": playbook}})
    [updated] = result.views
    [call] = result.calls_to("views.update")
    assert call.params["view_id"] == "V_RUN_1" and call.params["hash"] == "h0"
    return {**updated, "id": "V_RUN_1"}


def blocks_by_id(view):
    return {b.get("block_id"): b for b in view["blocks"]}


def deploy_values(**changes):
    values = {
        ids.BLOCK_RUN_PLAYBOOK: select_value("deploy"),
        ids.BLOCK_RUN_TARGET: text_value("local"),
        VAR + "version": text_value("1.4.2"),
        VAR + "env_name": select_value("green"),
        VAR + "replicas": number_value("3"),
        VAR + "dry_run": checkbox_value(True),
        ids.BLOCK_RUN_CHECK: checkbox_value(False, ids.CHECK_MODE_VALUE),
    }
    values.update(changes)
    return values


def test_choosing_a_playbook_shows_its_variables_as_typed_fields(slack):
    view = choose(slack, open_modal(slack), "deploy")

    blocks = blocks_by_id(view)
    assert blocks[VAR + "version"]["element"]["type"] == "plain_text_input"
    assert blocks[VAR + "version"]["optional"] is False
    assert blocks[VAR + "env_name"]["element"]["type"] == "static_select"
    assert [o["value"] for o in blocks[VAR + "env_name"]["element"]["options"]] == ["blue",
                                                                                   "green"]
    assert blocks[VAR + "replicas"]["element"]["type"] == "number_input"
    assert blocks[VAR + "replicas"]["element"]["min_value"] == "1"
    assert blocks[VAR + "dry_run"]["element"]["type"] == "checkboxes"
    assert blocks[ids.BLOCK_RUN_CHECK]["element"]["type"] == "checkboxes"
    # a secret is never asked for; the form says where the worker takes it from
    assert VAR + "db_password" not in blocks
    assert "PLAYBOT_VAR_DB_PASSWORD" in str(view)


def test_a_bad_value_comes_back_as_a_field_error_and_nothing_runs(slack):
    view = choose(slack, open_modal(slack), "deploy")

    result = slack.submit(view, deploy_values(**{VAR + "version": text_value("latest")}),
                          user=OPERATOR)

    assert result.ack["response_action"] == "errors"
    error = result.ack["errors"][VAR + "version"]
    assert "pattern" in error
    # Slack shows field errors as plain text: no backticks, and no repeat of the field's name
    assert "`" not in error and not error.lower().startswith("version")
    assert error.startswith("“latest” does not match")
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


def test_an_unknown_target_is_an_error_on_the_target_field(slack):
    view = choose(slack, open_modal(slack), "deploy")

    result = slack.submit(view, deploy_values(**{ids.BLOCK_RUN_TARGET: text_value("lokal")}),
                          user=OPERATOR)

    assert "local" in result.ack["errors"][ids.BLOCK_RUN_TARGET]
    assert slack.jobs() == []


def test_good_values_start_a_job_in_the_channel_the_modal_came_from(slack):
    view = choose(slack, open_modal(slack, channel="C_DEPLOYS"), "deploy")

    result = slack.submit(view, deploy_values(), user=OPERATOR)

    assert result.status == 200 and result.ack is None  # the modal closes
    [job] = slack.jobs()
    assert job.status == JobStatus.pending
    assert job.extra_vars == {"version": "1.4.2", "env_name": "green", "replicas": 3,
                              "dry_run": True}
    assert job.slack_channel_id == "C_DEPLOYS"
    assert slack.queue.enqueued == [job.job_id]


def test_submitting_the_same_modal_twice_starts_one_job(slack):
    view = choose(slack, open_modal(slack), "deploy")

    slack.submit(view, deploy_values(), user=OPERATOR)
    again = slack.submit(view, deploy_values(), user=OPERATOR)

    assert len(slack.jobs()) == 1
    assert "already received" in again.reply_text


def test_check_mode_box_runs_in_check_mode(slack):
    view = choose(slack, open_modal(slack), "ping")

    slack.submit(view, {ids.BLOCK_RUN_PLAYBOOK: select_value("ping"),
                        ids.BLOCK_RUN_TARGET: text_value("prod-local"),
                        ids.BLOCK_RUN_CHECK: checkbox_value(True, ids.CHECK_MODE_VALUE)},
                 user=OPERATOR)

    # check mode is not read-only: on production it waits for approval like any run
    [job] = slack.jobs()
    assert job.check_mode and job.status == JobStatus.awaiting_approval


def test_home_button_opens_the_same_modal(slack):
    result = slack.click(ids.ACTION_HOME_RUN, "open", user=OPERATOR,
                         view={"id": "V_HOME", "type": "home"})

    [view] = result.views
    assert view["callback_id"] == ids.VIEW_RUN_PLAYBOOK


def test_each_bad_value_is_reported_on_its_own_field(slack):
    view = choose(slack, open_modal(slack), "deploy")

    result = slack.submit(view, deploy_values(**{VAR + "version": text_value("latest"),
                                                  VAR + "replicas": number_value("99")}),
                          user=OPERATOR)

    errors = result.ack["errors"]
    assert "pattern" in errors[VAR + "version"]
    assert "at most 20" in errors[VAR + "replicas"]
