"""The process commands: `playbot web` serving the real app, and the clear refusals of
`worker`, `clock` and `web` when their configuration cannot work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.console.bootstrap import migrate, seed_examples
from bot.fake_slack import FakeSlack, SlackSender
from bot.settings import load_settings
from db.session import make_engine, make_session_factory
from tests.console.conftest import REPO, console_command
from tests.support.cli import run_cli

NO_REDIS = {"REDIS_URL": ""}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_worker_without_redis_refuses_and_explains(sqlite_url: str) -> None:
    result = run_cli("worker", env={**NO_REDIS, "DATABASE_URL": sqlite_url})

    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr
    assert "playbot web" in result.stderr


def test_clock_without_redis_refuses_and_explains(sqlite_url: str) -> None:
    result = run_cli("clock", env={**NO_REDIS, "DATABASE_URL": sqlite_url})

    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr


def test_web_without_slack_credentials_refuses_and_points_to_the_console(
        sqlite_url: str) -> None:
    result = run_cli("web", env={**NO_REDIS, "DATABASE_URL": sqlite_url,
                                 "SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": ""})

    assert result.exit_code == 2
    assert "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set" in result.stderr
    assert "playbot console" in result.stderr


def test_maintenance_archive_logs_reports_what_it_did(sqlite_url: str, tmp_path: Path) -> None:
    result = run_cli("maintenance", "archive-logs",
                     env={"DATABASE_URL": sqlite_url,
                          "PLAYBOT_ARCHIVE_DIR": str(tmp_path / "archive")})

    assert result.exit_code == 0, result.stderr
    assert "Archived 0 log lines into 0 files" in result.stdout


@pytest.mark.slow
def test_web_serves_health_and_signed_slack_commands_until_terminated(
        sqlite_url: str, tmp_path: Path) -> None:
    # given `playbot web` on a free port, with the embedded queue and Slack's API faked
    port = free_port()
    with FakeSlack() as fake:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL"))}
        env.update(DATABASE_URL=sqlite_url, SLACK_BOT_TOKEN="xoxb-test",
                   SLACK_SIGNING_SECRET="web-test-secret", SLACK_API_URL=fake.api_url,
                   PLAYBOT_RUNTIME_DIR=str(tmp_path / "runs"), PYTHONPATH=str(REPO))
        process = subprocess.Popen([*console_command(), "web", "--host", "127.0.0.1",
                                    "--port", str(port)], env=env, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            # when it is up
            health = _wait_for_health(f"http://127.0.0.1:{port}/healthz", process)

            # then /healthz reports the database and the in-process queue as fine
            assert health["status"] == "ok"
            assert health["queue"]["ok"] is True
            # and a signed slash command is accepted and answered
            sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", "web-test-secret",
                                 fake)
            assert sender.command("/playbot", "help", user="U_ALICE").status == 200
            # and a request with a wrong signature is refused
            forged = SlackSender(f"http://127.0.0.1:{port}/slack/events", "wrong", fake)
            assert forged.command("/playbot", "help", user="U_ALICE").status == 401
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
    # and SIGTERM stops it cleanly
    assert process.returncode == 0, output


@pytest.mark.slow
@pytest.mark.redis
def test_web_and_worker_processes_run_a_job_through_redis(
        redis_server, tmp_path: Path) -> None:
    # given the Procfile's processes — `playbot web` and `playbot worker` — on Redis and one
    # database with the examples registered (as the console registers them)
    database = f"sqlite:///{tmp_path / 'playbot.db'}"
    migrate(database)
    engine = make_engine(database)
    seed_examples(make_session_factory(engine), load_settings(
        database_url=database, playbook_dir=REPO / "examples" / "playbooks"),
        REPO / "examples" / "inventory.yml")
    engine.dispose()
    port = free_port()
    with FakeSlack() as fake:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL"))}
        env.update(DATABASE_URL=database, REDIS_URL=redis_server.url.rsplit("/", 1)[0] + "/7",
                   SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="web-test-secret",
                   SLACK_API_URL=fake.api_url, PLAYBOOK_DIR=str(REPO / "examples" / "playbooks"),
                   PLAYBOT_RUNTIME_DIR=str(tmp_path / "runs"), PYTHONPATH=str(REPO))
        processes = [
            subprocess.Popen([*console_command(), *args], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for args in (["web", "--host", "127.0.0.1", "--port", str(port)],
                         ["worker", "--threads", "1"])]
        try:
            _wait_for_health(f"http://127.0.0.1:{port}/healthz", processes[0])
            sender = SlackSender(f"http://127.0.0.1:{port}/slack/events", "web-test-secret",
                                 fake)

            # when alice runs ping on local through the web process
            assert sender.command("/run-playbook", "ping local", user="U_ALICE").status == 200

            # then the worker process runs it and the job message ends with its recap
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not any(
                    "succeeded" in (call.params.get("text") or "")
                    for call in fake.calls_to("chat.update")):
                time.sleep(0.3)
            assert any("succeeded" in (call.params.get("text") or "")
                       for call in fake.calls_to("chat.update")), fake.calls
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            outputs = [process.communicate(timeout=60)[0] for process in processes]
    # and both stop cleanly on SIGTERM
    assert [process.returncode for process in processes] == [0, 0], outputs


def _wait_for_health(url: str, process: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"playbot web exited: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("playbot web did not answer /healthz in time")
