"""The work after each ack in processes of its own (`bot.after_ack`), as `playbot web` runs it
on MariaDB + Redis: the same answers in Slack and the same rows as on threads, metrics still
counted by the web process, and a killed after-ack process costs only the work it held."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt.request import BoltRequest

from bot.after_ack import after_ack_processes
from bot.runtime import build_runtime
from bot.settings import Settings
from bot.web import make_server
from db.models import JobStatus
from slackui import ids
from tests.bot.test_web import get
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.fixtures import OPERATOR, app_settings, seed
from tests.handlers.harness import SlackHarness, text_value
from tests.handlers.test_run_modal import VAR, choose, deploy_values, open_modal
from tests.support.servers import free_port

PROCESSES = 2


@pytest.fixture
def slack(fake_slack, playbook_dir, mariadb_url, private_redis) -> Iterator[SlackHarness]:
    """The app served as `playbot web` serves it on MariaDB + Redis: after-ack processes."""
    settings = app_settings(mariadb_url, fake_slack, playbook_dir,
                            redis_url=private_redis.url, playbot_after_ack_processes=PROCESSES)
    runtime = build_runtime(settings, after_ack_processes=after_ack_processes(settings))
    assert runtime.after_ack is not None
    runtime.after_ack.warm_up()
    server = make_server(runtime, "127.0.0.1", 0).start()
    harness = SlackHarness(fake_slack, runtime, server, queue=None)  # type: ignore[arg-type]
    seed(harness.session_factory, playbook_dir)
    yield harness
    harness.close()


def pool_of(harness: SlackHarness):  # noqa: ANN201
    return harness.runtime.after_ack._pool  # noqa: SLF001 - the test kills a child on purpose


def child_pids(harness: SlackHarness) -> set[int]:
    return set(pool_of(harness)._processes or {})  # noqa: SLF001


def test_only_mariadb_with_redis_moves_the_work_out_of_the_web_process(tmp_path):
    def processes(**values: object) -> int:
        base = {"slack_bot_token": "xoxb-x", "slack_signing_secret": "s",
                "playbot_after_ack_processes": 3}
        return after_ack_processes(Settings(**{**base, **values}))

    mariadb = "mysql+pymysql://u:p@127.0.0.1/playbot"
    assert processes(database_url=mariadb, redis_url="redis://127.0.0.1:6379/0") == 3
    # the embedded default: the in-process broker lives in the web process
    assert processes(database_url=mariadb, redis_url=None) == 0
    assert processes(database_url=f"sqlite:///{tmp_path}/p.db",
                     redis_url="redis://127.0.0.1:6379/0") == 0
    assert processes(database_url=mariadb, redis_url="redis://127.0.0.1:6379/0",
                     playbot_after_ack_processes=0) == 0


def test_a_launch_is_done_by_another_process_and_looks_the_same_in_slack(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.4", user=OPERATOR)

    assert result.status == 200
    [job] = slack.jobs()
    assert job.status == JobStatus.pending
    assert job.extra_vars["version"] == "2.4"
    assert job.dramatiq_message_id  # enqueued to the real Redis by the after-ack process
    [message] = result.posted
    assert job.job_id[:8] in message.text or job.job_id[:8] in str(message.blocks)
    [row] = slack.audit("job.launch")
    assert row.details["server"] == "local"
    # the web process counts the launch it did not do itself
    status, metrics, _ = get(slack.server.url + "/metrics")
    assert 'playbot_jobs_launched_total{outcome="queued"}' in metrics


def test_a_mistake_is_answered_from_the_other_process(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy lokal version=2.4", user=OPERATOR)

    assert "local" in result.reply_text  # the closest server is suggested
    assert slack.jobs() == []


def test_what_the_ack_decided_reaches_the_other_process(slack):
    # the modal's field errors are found before the ack; the lazy half audits the refusal
    view = choose(slack, open_modal(slack), "deploy")

    result = slack.submit(view, deploy_values(**{VAR + "version": text_value("latest")}),
                          user=OPERATOR)

    assert result.ack["response_action"] == "errors"
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


def test_a_killed_after_ack_process_loses_only_its_own_work(slack, caplog):
    # given: one of the after-ack processes is killed (OOM killer, an operator's kill -9)
    old_pool = child_pids(slack)
    victim = next(iter(old_pool))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not pool_of(slack)._broken and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.05)

    # when: the next command arrives
    with caplog.at_level(logging.ERROR, logger="bot.after_ack"):
        result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.5", user=OPERATOR)

    # then: it is acked and done by a fresh pool, and the death was logged
    assert result.status == 200
    [job] = slack.jobs()
    assert job.extra_vars["version"] == "2.5"
    assert victim not in child_pids(slack)
    assert "after-ack process died" in caplog.text
    # and the broken pool's other processes are gone, not left waiting forever
    deadline = time.monotonic() + 10
    while not all(map(_gone, old_pool)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(map(_gone, old_pool)), old_pool


def test_stopping_the_web_process_finishes_the_work_it_acked(slack):
    # the ack is sent before the work is done; shutting down must not drop that work
    response = slack.sender.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.6", user=OPERATOR,
                               channel="C_OPS")
    assert response.status == 200

    slack.server.stop()
    slack.runtime.close()

    [job] = slack.jobs()
    assert job.dramatiq_message_id


def test_a_socket_mode_command_is_done_by_another_process_too(slack):
    # given: a slash command as Socket Mode delivers it (a parsed payload, no HTTP signature)
    form = {"team_id": "T_PLAYBOT", "channel_id": "C_OPS", "user_id": OPERATOR,
            "user_name": "operator", "command": ids.CMD_RUN_PLAYBOOK,
            "text": "deploy local version=3.1", "api_app_id": "A_PLAYBOT",
            "response_url": slack.fake.response_url(OPERATOR), "trigger_id": "trigger-sm-1"}

    # when: the app dispatches it (what SocketModeHandler does with each envelope)
    response = slack.runtime.app.dispatch(BoltRequest(body=form, mode="socket_mode"))
    slack.wait_idle()

    # then: acked at once, and the launch was done in an after-ack process
    assert response.status == 200
    [job] = slack.jobs()
    assert job.extra_vars["version"] == "3.1" and job.dramatiq_message_id


def _process_children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115, PTH123
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"  # noqa: SIM115, PTH123
    except OSError:
        return True


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_after_ack_processes_never_outlive_playbot_web(fake_slack, mariadb_url,
                                                           private_redis, tmp_path, how):
    # given: `playbot web` on MariaDB + Redis, as an install runs it
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL", "DATABASE_URL"))}
    env.update(DATABASE_URL=mariadb_url, REDIS_URL=private_redis.url,
               SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s3cret",
               SLACK_API_URL=fake_slack.api_url, PLAYBOOK_DIR=str(tmp_path))
    playbot = str(Path(sys.executable).parent / "playbot")
    web = subprocess.Popen([playbot, "web", "--host", "127.0.0.1",
                            "--port", str(port)], env=env, cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        children = _process_children(web.pid)
        assert len(children) >= PROCESSES  # the after-ack processes (+ a resource tracker)

        # when: it is stopped (SIGTERM) or killed outright (SIGKILL: the OOM killer)
        web.send_signal(how)
        web.wait(40)

        # then: none of its processes is left behind holding database connections
        deadline = time.monotonic() + 10
        while not all(map(_gone, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(map(_gone, children)), children
        if how == signal.SIGTERM:
            assert web.returncode == 0
    finally:
        if web.poll() is None:
            web.kill()
            web.wait()
