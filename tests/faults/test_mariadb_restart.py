"""MariaDB restarted under a running job: a real `playbot worker` process (and the clock)
against a MariaDB of the test's own, stopped mid-run and started again.

The job ends with its playbook's own outcome — never left `running` or `pending`, never
failed for the database's hiccup — its playbook ran once, its output is complete, and the
next job runs normally once the database is back. A launch while the database is down is
answered with a clear error and leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select

from bot.fake_slack import FakeSlack
from db.models import Job, JobStatus
from db.session import make_engine, make_session_factory
from migrations import alembic_config
from slackui import ids
from tests.handlers.fixtures import OPERATOR, app_settings, seed
from tests.handlers.harness import start_harness
from tests.support.servers import MariaDBServer
from tests.workers.conftest import World, config_for, fake_slack, playbook_dir  # noqa: F401
from tests.workers.test_worker_redis import starts, wait_for
from workers.broker import reset_broker
from workers.main import run_clock
from workers.middleware import dispose_engines
from workers.queue import DramatiqJobQueue

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

OUTAGE_SECONDS = 4
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def outage_world(private_mariadb: MariaDBServer, playbook_dir,  # noqa: F811
                 fake_slack: FakeSlack) -> Iterator[World]:  # noqa: F811
    """A migrated database on the test's own MariaDB (the one the test restarts)."""
    url = private_mariadb.create_database("playbot_outage")
    command.upgrade(alembic_config(url), "head")
    engine = make_engine(url)
    reset_broker()
    yield World(url=url, factory=make_session_factory(engine), playbook_dir=playbook_dir,
                slack=fake_slack)
    engine.dispose()
    dispose_engines()
    reset_broker()


def _clock(config) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The clock (reaper, requeue, expiry) running beside the worker, as `playbot clock`."""
    stop = threading.Event()
    thread = threading.Thread(target=run_clock, args=(config,),
                              kwargs={"stop": stop, "install_signals": False}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@contextmanager
def worker_process(config, tmp_path: Path, *, threads: int) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    """A real worker process (`tests.workers.worker_process`, as `playbot worker`)."""
    values = {k: str(v) if isinstance(v, Path) else v for k, v in config.__dict__.items()}
    values["threads"] = threads
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.worker_process", json.dumps(values)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its playbooks' processes
            process.wait(10)
        log.close()


def _status(world: World, job_id: str) -> JobStatus | None:
    try:
        return world.get(job_id).status
    except Exception:  # noqa: BLE001 - the database may still be coming back
        return None


def test_a_job_running_while_mariadb_restarts_ends_clearly_and_the_next_one_runs(
        outage_world, private_mariadb, config_for, redis_server, tmp_path):  # noqa: F811
    world = outage_world
    # the clock's requeue delays shortened: a message deferred while the database was down
    # may not have been recorded as sent, and the clock sends such a job again
    config = config_for(world, redis_url=redis_server.url, heartbeat_interval=1.0,
                        reaper_grace=20.0, housekeeping_interval=1.0, requeue_after=3.0,
                        requeue_lost_after=10.0)
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "6"})
    queued = tmp_path / "queued"
    queued_id = world.job("slow", server="other",
                          extra_vars={"marker": str(queued), "seconds": "0"})
    queue = DramatiqJobQueue(redis_server.url)

    with worker_process(config, tmp_path, threads=2) as process:
        # given a job whose playbook is running
        queue.enqueue(job_id)
        assert wait_for(lambda: starts(marker) == 1, timeout=60), (
            (tmp_path / "worker.log").read_text())

        # when MariaDB stops mid-run, a launched job's message reaches the worker while it
        # is down, and MariaDB comes back a few seconds later
        private_mariadb.halt()
        queue.enqueue(queued_id)
        time.sleep(OUTAGE_SECONDS)
        private_mariadb.start()

        # then the job ends, by itself or by the clock, with a clear outcome
        clock = _clock(config)
        next(clock)
        try:
            ended = wait_for(lambda: _status(world, job_id) in (JobStatus.success,
                                                                JobStatus.failed), 120, 0.5)
            log = (tmp_path / "worker.log").read_text()
            assert ended, f"job is {_status(world, job_id)}\n{log[-4000:]}"
            job = world.get(job_id)
            # the playbook itself succeeded: that is what the job says (its ending was
            # written again once the database was back), with its whole output
            assert (job.status, job.error_message) == (JobStatus.success, None), log[-4000:]
            assert job.completed_at is not None and job.recap
            lines = world.logs(job_id)
            assert [line.line_number for line in lines] == list(range(1, len(lines) + 1))
            assert any("PLAY RECAP" in line.content for line in lines)
            assert starts(marker) == 1  # never run twice
            # and the job whose message came during the outage runs once it is back, once
            assert wait_for(lambda: _status(world, queued_id) == JobStatus.success, 120, 0.5), (
                f"{_status(world, queued_id)}\n{(tmp_path / 'worker.log').read_text()[-4000:]}")
            assert starts(queued) == 1

            # and the next job runs normally on the restarted database
            after = tmp_path / "after"
            next_id = world.job("slow", extra_vars={"marker": str(after), "seconds": "0"})
            queue.enqueue(next_id)
            assert wait_for(lambda: _status(world, next_id) == JobStatus.success, 120, 0.5), (
                (tmp_path / "worker.log").read_text()[-4000:])
            assert starts(after) == 1
        finally:
            next(clock, None)
        assert process.poll() is None  # the worker survived the outage

    # nothing is left pending or running
    with world.factory() as s:
        stuck = s.scalar(select(func.count()).select_from(Job).where(
            Job.status.in_([JobStatus.pending, JobStatus.running])))
    assert stuck == 0


def test_a_launch_while_mariadb_is_down_gets_a_clear_error_and_leaves_nothing_behind(
        private_mariadb, fake_slack, tmp_path):  # noqa: F811
    # given the Slack app on the test's own MariaDB, with its people, servers and playbooks
    url = private_mariadb.create_database("playbot_launch")
    command.upgrade(alembic_config(url), "head")
    books = tmp_path / "app-playbooks"
    books.mkdir()
    slack = start_harness(app_settings(url, fake_slack, books), fake_slack)
    try:
        seed(slack.session_factory, books)

        # when someone launches while MariaDB is down, and again once it is back
        private_mariadb.halt()
        during = slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
        private_mariadb.start()
        after = slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
        jobs = slack.jobs()
    finally:
        slack.close()

    # then the first was acked, and told clearly that nothing started because of the
    # database; nothing of it was written, and the launch after the restart runs as usual
    assert during.status == 200
    assert "cannot reach its database" in during.reply_text
    assert "was not done" in during.reply_text
    assert during.posted == []
    assert after.status == 200 and "ping on local" in after.posted_text
    assert len(jobs) == 1 and slack.queue.enqueued == [jobs[0].job_id]
