"""Acked work survives the processes that hold it: real `playbot web` and `playbot worker`
processes on MariaDB + Redis, killed with SIGKILL right after their acks.

Each test ends with every acked launch run exactly once (one job, one Ansible run), one run
message each in Slack, no second answer to anyone, and nothing pending or running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.fake_slack import FakeSlack, SlackSender
from db.models import Environment, Job, JobLog, JobStatus, Server
from db.session import make_engine, make_session_factory, transaction
from slackui import ids
from tests.handlers.fixtures import (  # noqa: F401 - the FakeSlack and playbook fixtures
    OPERATOR,
    _fake_slack_server,
    fake_slack,
    playbook_dir,
    seed,
)
from tests.handlers.harness import BOT_TOKEN, SIGNING_SECRET
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

LAUNCHES = 10
REDELIVERY_SECONDS = 3  # PLAYBOT_REDELIVERY_SECONDS of the worker processes
PLAYBOT = str(Path(sys.executable).parent / "playbot")


class Proc:
    """One `playbot` process, its output in a file for when a test fails."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("ab")
        self.process = subprocess.Popen([PLAYBOT, *args], env=env, cwd=log.parent,
                                        stdout=self.handle, stderr=subprocess.STDOUT)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()


class Stack:
    """`playbot web` and `playbot worker` as an install runs them, against FakeSlack."""

    def __init__(self, tmp: Path, env: dict[str, str], fake: FakeSlack) -> None:
        self.tmp = tmp
        self.env = env
        self.fake = fake
        self.port = free_port()
        self.procs: list[Proc] = []
        self.sender = SlackSender(f"http://127.0.0.1:{self.port}/slack/events",
                                  SIGNING_SECRET, fake)

    def start_web(self) -> Proc:
        web = self._start(["web", "--host", "127.0.0.1", "--port", str(self.port)], "web")
        self.wait(lambda: _healthy(self.port), 60, "the web process to answer", web)
        return web

    def start_worker(self, name: str = "worker") -> Proc:
        worker = self._start(["worker", "--threads", "4", "--with-clock"], name)
        self.wait(lambda: "after-ack consumer started" in worker.log.read_text(errors="replace"),
                  60, "the worker's after-ack consumer", worker)
        return worker

    def _start(self, args: list[str], name: str) -> Proc:
        proc = Proc(args, self.env, self.tmp / f"{name}-{len(self.procs)}.log")
        self.procs.append(proc)
        return proc

    def wait(self, done: Callable[[], bool], timeout: float, what: str,
             proc: Proc | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.1)
        logs = "\n\n".join(f"--- {p.log.name}\n{p.tail()}" for p in ([proc] if proc else
                                                                     self.procs))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def launch_all(self, servers: list[str]) -> list[str]:
        """Send one signed /run-playbook per server at once; the trigger ids acked (200)."""
        def launch(server: str) -> str | None:
            trigger = f"trigger-fault-{server}"
            response = self.sender.command(ids.CMD_RUN_PLAYBOOK, f"ping {server}",
                                           user=OPERATOR, channel="C_OPS", trigger_id=trigger)
            return trigger if response.status == 200 else None

        with ThreadPoolExecutor(len(servers)) as pool:
            return [trigger for trigger in pool.map(launch, servers) if trigger]

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def _healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture
def stack(tmp_path, fake_slack, mariadb_url, private_redis, playbook_dir,  # noqa: F811
          ) -> Iterator[tuple[Stack, list[str], Callable[[], object]]]:
    factory = make_session_factory(make_engine(mariadb_url))
    seed(factory, playbook_dir)
    servers = [f"fault-{n:02d}" for n in range(1, LAUNCHES + 1)]
    with transaction(factory) as session:
        session.add_all(Server(hostname=name, environment=Environment.development,
                               tags=["fault"], connection="local") for name in servers)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL", "DATABASE_URL"))}
    env.update(DATABASE_URL=mariadb_url, REDIS_URL=private_redis.url,
               SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
               SLACK_API_URL=fake_slack.api_url, PLAYBOOK_DIR=str(playbook_dir),
               PLAYBOT_RUNTIME_DIR=str(tmp_path / "runs"),
               PLAYBOT_ARCHIVE_DIR=str(tmp_path / "archive"),
               PLAYBOT_KNOWN_HOSTS=str(tmp_path / "known_hosts"),
               PLAYBOT_AFTER_ACK_THREADS="2",
               PLAYBOT_REDELIVERY_SECONDS=str(REDELIVERY_SECONDS),
               LOG_LEVEL="INFO")
    running = Stack(tmp_path, env, fake_slack)
    try:
        yield running, servers, factory
    finally:
        running.close()
        factory.kw["bind"].dispose()


def _jobs(factory) -> list[Job]:  # noqa: ANN001
    with factory() as session:
        return list(session.scalars(select(Job).order_by(Job.id)).unique())


def _all_ended(factory, count: int) -> bool:  # noqa: ANN001
    jobs = _jobs(factory)
    return len(jobs) >= count and all(
        job.status in (JobStatus.success, JobStatus.failed, JobStatus.cancelled)
        for job in jobs)


def assert_each_launch_ran_once_and_was_told_once(stack: Stack, servers: list[str],
                                                  acked: list[str], factory) -> None:  # noqa: ANN001
    # every acked launch made exactly one job, which ran (one Ansible run) and succeeded
    stack.wait(lambda: _all_ended(factory, len(acked)), 60, "every job to end")
    jobs = _jobs(factory)
    assert sorted(job.request_key.split("@")[0] for job in jobs) == sorted(
        f"cmd:{FakeSlack.TEAM_ID}:{trigger}" for trigger in acked)
    assert {job.status for job in jobs} == {JobStatus.success}, [
        (job.job_id, job.status, job.error_message) for job in jobs]
    with factory() as session:
        recaps = dict(session.execute(
            select(JobLog.job_id, func.count()).where(JobLog.content.contains("PLAY RECAP"))
            .group_by(JobLog.job_id)).all())
    assert all(recaps.get(job.id) == 1 for job in jobs), recaps
    # one run message per launch in the channel, none twice, and nobody was answered again
    time.sleep(1)  # anything late would show up now
    posts = [c for c in stack.fake.calls_to("chat.postMessage")
             if c.params.get("channel") == "C_OPS" and not c.params.get("thread_ts")]
    for job in jobs:
        mine = [c for c in posts if job.job_id[:8] in str(c.params)]
        assert len(mine) == 1, (job.job_id, len(mine))
    assert len(posts) == len(jobs)
    again = [c for c in stack.fake.calls
             if c.method in ("response_url", "chat.postEphemeral")
             and "already" in str(c.params)]
    assert again == []
    assert all(job.slack_message_ts for job in jobs)


def test_killing_the_web_process_right_after_its_acks_loses_no_launch(stack):
    stack, servers, factory = stack
    # given: web and worker running
    stack.start_worker()
    web = stack.start_web()

    # when: ten launches are acked and the web process is killed at once
    acked = stack.launch_all(servers)
    web.kill()
    assert len(acked) == LAUNCHES

    # then: after a restart of web, each launch ran once and was announced once
    stack.start_web()
    assert_each_launch_ran_once_and_was_told_once(stack, servers, acked, factory)


def _lock_jobs_table(mariadb_url: str) -> pymysql.Connection:
    url = make_url(mariadb_url)
    connection = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                                 password=url.password or "", database=url.database,
                                 autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("LOCK TABLES jobs WRITE")
    return connection


def test_a_worker_killed_holding_acked_work_has_it_redelivered_and_done_once(stack, mariadb_url):
    stack, servers, factory = stack
    # given: the worker's after-ack threads are held before any launch can write its job
    # (the jobs table is locked), so the worker dies holding their messages
    worker = stack.start_worker()
    stack.start_web()
    lock = _lock_jobs_table(mariadb_url)
    try:
        acked = stack.launch_all(servers)
        assert len(acked) == LAUNCHES
        time.sleep(1.5)  # the consumer takes its messages and blocks on the lock

        # when: that worker is killed (SIGKILL) and another one starts
        worker.kill()
    finally:
        lock.close()  # the session ends: UNLOCK
    started = time.monotonic()
    replacement = stack.start_worker("replacement")

    # then: the dead worker's messages come back after PLAYBOT_REDELIVERY_SECONDS, and
    # every launch still runs once and is announced once
    assert_each_launch_ran_once_and_was_told_once(stack, servers, acked, factory)
    assert time.monotonic() - started < 45
    assert "delivery 2" in replacement.log.read_text(errors="replace")
