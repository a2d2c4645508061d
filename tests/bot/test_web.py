"""The web process over real HTTP (waitress on loopback): Slack's signature checks, /healthz
and /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from slack_sdk import WebClient

from bot.fake_slack import sign_request
from bot.runtime import build_runtime
from bot.web import make_server
from slackui import ids
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.fixtures import OPERATOR, app_settings
from tests.handlers.harness import BOT_TOKEN, SIGNING_SECRET, RecordingQueue
from tests.support.servers import free_port


def get(url: str, timeout: float = 10) -> tuple[int, str, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


class HangingQueue(RecordingQueue):
    """A queue whose broker never answers (a black-holed Redis)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def ping(self) -> None:
        self.release.wait(30)


def serve(settings, fake, queue):
    runtime = build_runtime(settings, client=WebClient(token=BOT_TOKEN, base_url=fake.api_url),
                            queue=queue)
    return runtime, make_server(runtime, "127.0.0.1", 0).start()


def test_healthz_is_ok_when_database_and_queue_answer(slack):
    status, body, headers = get(slack.server.url + "/healthz")

    assert status == 200
    assert json.loads(body) == {"status": "ok", "database": {"ok": True},
                                "queue": {"ok": True}}
    assert headers["Content-Type"] == "application/json"


def test_healthz_is_503_when_the_queue_is_down(slack):
    slack.queue.down = True

    status, body, _ = get(slack.server.url + "/healthz")

    assert status == 503
    report = json.loads(body)
    assert report["database"]["ok"] is True and report["queue"]["ok"] is False


def test_healthz_is_503_when_the_database_is_unreachable(fake_slack, playbook_dir, tmp_path):
    settings = app_settings(f"sqlite:///{tmp_path}/missing/dir/playbot.db", fake_slack,
                            playbook_dir)
    runtime, server = serve(settings, fake_slack, RecordingQueue())
    try:
        status, body, _ = get(server.url + "/healthz")
    finally:
        server.stop()
        runtime.close()

    assert status == 503
    assert json.loads(body)["database"]["ok"] is False


def test_healthz_never_hangs_on_a_dependency_that_does_not_answer(fake_slack, playbook_dir,
                                                                    app_sqlite_url):
    queue = HangingQueue()
    runtime, server = serve(app_settings(app_sqlite_url, fake_slack, playbook_dir), fake_slack,
                            queue)
    try:
        started = time.monotonic()
        status, body, _ = get(server.url + "/healthz")
        elapsed = time.monotonic() - started
    finally:
        queue.release.set()
        server.stop()
        runtime.close()

    assert status == 503 and elapsed < 5
    assert "no answer" in json.loads(body)["queue"]["error"]


@pytest.mark.redis
def test_healthz_pings_redis_when_the_queue_has_no_ping_of_its_own(
        fake_slack, playbook_dir, app_sqlite_url, private_redis):
    class PlainQueue:
        def enqueue(self, job_id: str) -> str:
            return "m"

    settings = app_settings(app_sqlite_url, fake_slack, playbook_dir,
                            redis_url=private_redis.url)
    runtime, server = serve(settings, fake_slack, PlainQueue())
    try:
        up, _, _ = get(server.url + "/healthz")
        private_redis.stop()
        down, body, _ = get(server.url + "/healthz")
    finally:
        server.stop()
        runtime.close()

    assert up == 200
    assert down == 503 and json.loads(body)["queue"]["ok"] is False


def test_metrics_count_requests_acks_and_jobs(slack):
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)

    status, body, headers = get(slack.server.url + "/metrics")

    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'playbot_slack_requests_total{kind="command",name="/run-playbook"}' in body
    assert 'playbot_slack_ack_seconds_bucket{kind="command",le="0.1"}' in body
    assert 'playbot_slack_acks_total{kind="command",status="200"}' in body
    assert 'playbot_jobs_launched_total{outcome="queued"}' in body
    assert 'playbot_http_requests_total{route="/slack/events",status="200"}' in body


def test_a_forged_signature_is_refused_and_nothing_is_written(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user="U_MALLORY",
                           signing_secret="not-the-real-secret")

    assert result.status == 401
    assert slack.jobs() == [] and slack.audit() == [] and slack.user("U_MALLORY") is None
    assert result.calls == []


def test_a_request_older_than_five_minutes_is_refused(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR,
                           timestamp=int(time.time()) - 6 * 60)

    assert result.status == 401
    assert slack.jobs() == [] and slack.audit() == []


def test_the_ack_is_fast(slack):
    started = time.monotonic()
    result = slack.sender.command(ids.CMD_JOBS, "", user=OPERATOR)
    elapsed = time.monotonic() - started

    assert result.status == 200 and elapsed < 1.0
    slack.wait_idle()


def test_other_paths_and_methods(slack):
    assert get(slack.server.url + "/nope")[0] == 404
    assert get(slack.server.url + "/slack/events")[0] == 405


def test_serve_runs_the_production_server_and_stops_cleanly_on_sigterm(fake_slack,
                                                                       app_sqlite_url):
    # given: `playbot web` as a process, configured only by its environment
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL", "DATABASE_URL"))}
    env.update({"DATABASE_URL": app_sqlite_url, "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": fake_slack.api_url,
                "PORT": str(port)})
    code = ("from bot.settings import load_settings; from bot.runtime import build_runtime; "
            "from bot.web import serve; serve(build_runtime(load_settings()), host='127.0.0.1')")
    process = subprocess.Popen([sys.executable, "-c", code], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # when it is up
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                status = get(f"http://127.0.0.1:{port}/healthz", timeout=2)[0]
                break
            except OSError:
                time.sleep(0.2)
        # then it is healthy (SQLite + the in-process broker), and SIGTERM ends it cleanly
        assert status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_slacks_url_verification_challenge_is_answered(slack):
    # Slack sends this once when the events request URL is saved in the app settings
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    headers = {"Content-Type": "application/json",
               **sign_request(SIGNING_SECRET, body)}
    request = urllib.request.Request(slack.server.events_url, data=body.encode(),
                                     headers=headers, method="POST")

    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"challenge": "c-123"}
