"""Workers on real Redis and MariaDB: nothing lost, nothing run twice.

The broker may deliver a message twice or lose it; the database decides what runs. Each
test counts playbook starts with a marker file the playbook appends to.
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
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from core.errors import QueueUnavailable
from core.jobs import mark_enqueued
from db.models import JobStatus
from workers import housekeeping
from workers.broker import reset_broker
from workers.main import run_worker
from workers.notifier import drain
from workers.queue import DramatiqJobQueue

pytestmark = [pytest.mark.redis, pytest.mark.mariadb, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


@contextmanager
def worker_thread(config, threads: int = 2) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(config,),
                              kwargs={"threads": threads, "stop": stop}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def wait_for(predicate, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def starts(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_the_same_message_delivered_twice_runs_the_playbook_once(maria_world, config_for,
                                                                 redis_server, tmp_path):
    world = maria_world
    config = config_for(world, redis_url=redis_server.url)
    marker = tmp_path / "marker"
    job_id = world.job("ok", extra_vars={"marker": str(marker)})
    queue = DramatiqJobQueue(redis_server.url)

    with worker_thread(config):
        first, second = queue.enqueue(job_id), queue.enqueue(job_id)
        assert wait_for(lambda: world.get(job_id).status == JobStatus.success)
        time.sleep(1.5)  # the second delivery has been handled too
    assert drain(15)

    assert first != second
    assert starts(marker) == 1
    assert [r.line_number for r in world.logs(job_id)] == list(
        range(1, len(world.logs(job_id)) + 1))


def test_enqueue_fails_fast_while_redis_is_down_and_the_job_runs_once_it_is_back(
        maria_world, config_for, private_redis, tmp_path):
    world = maria_world
    config = config_for(world, redis_url=private_redis.url, requeue_after=0.0)
    marker = tmp_path / "marker"
    job_id = world.job("ok", extra_vars={"marker": str(marker)})
    queue = DramatiqJobQueue(private_redis.url)
    private_redis.stop()

    t0 = time.monotonic()
    with pytest.raises(QueueUnavailable):
        queue.enqueue(job_id)
    elapsed = time.monotonic() - t0
    assert housekeeping.requeue(config, send=queue.enqueue) == []  # still down: nothing sent

    private_redis.start()
    with worker_thread(config):
        assert housekeeping.requeue(config, send=queue.enqueue) == [job_id]
        assert wait_for(lambda: world.get(job_id).status == JobStatus.success)
        assert housekeeping.requeue(config, send=queue.enqueue) == []
    assert drain(15)

    assert elapsed < 2.5
    assert starts(marker) == 1


def test_a_pending_job_lost_with_a_restarted_redis_still_runs_once(maria_world, config_for,
                                                                   private_redis, tmp_path):
    world = maria_world
    config = config_for(world, redis_url=private_redis.url, requeue_lost_after=1.0)
    marker = tmp_path / "marker"
    job_id = world.job("ok", extra_vars={"marker": str(marker)})
    queue = DramatiqJobQueue(private_redis.url)
    message_id = queue.enqueue(job_id)
    with world.factory.begin() as s:
        mark_enqueued(s, job_id, message_id)

    private_redis.restart()  # no persistence: the queued message is gone
    with worker_thread(config):
        time.sleep(1.0)
        assert world.get(job_id).status == JobStatus.pending  # nobody got the message
        assert housekeeping.requeue(config, send=queue.enqueue) == [job_id]
        assert wait_for(lambda: world.get(job_id).status == JobStatus.success)
        assert housekeeping.requeue(config, send=queue.enqueue) == []
    assert drain(15)

    assert starts(marker) == 1


# worker processes --------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _still_alive(pids: list[int]) -> str:
    """Which of `pids` still run, with their command lines (for a failure message)."""
    lines = []
    for pid in pids:
        if _alive(pid):
            try:
                cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
                pgid = os.getpgid(pid)
            except OSError:
                continue
            lines.append(f"{pid} (pgid {pgid}): {cmd.decode(errors='replace')}")
    return "still running:\n" + "\n".join(lines)


@contextmanager
def worker_process(config, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    values = {k: str(v) if isinstance(v, Path) else v for k, v in config.__dict__.items()}
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.worker_process", json.dumps(values)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    spawned: list[int] = []
    try:
        yield process
    finally:
        spawned = _descendants(process.pid) if process.poll() is None else []
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in spawned:
            with suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        log.close()


def test_a_killed_worker_is_reaped_and_its_playbook_is_not_started_again(
        maria_world, config_for, redis_server, tmp_path):
    world = maria_world
    config = config_for(world, redis_url=redis_server.url, heartbeat_interval=1.0,
                        reaper_grace=3.0)
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "60"})
    queue = DramatiqJobQueue(redis_server.url)

    with worker_process(config, tmp_path) as process:
        queue.enqueue(job_id)
        assert wait_for(lambda: starts(marker) == 1, timeout=40), (
            (tmp_path / "worker.log").read_text())
        playbook_processes = _descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # the guard takes ansible-playbook and its forks down with the worker
        # (generous: on a loaded 2-core CI machine the group kill can take a while)
        assert wait_for(lambda: not any(_alive(pid) for pid in playbook_processes), 30), (
            _still_alive(playbook_processes))
    assert playbook_processes
    assert world.get(job_id).status == JobStatus.running

    def reaped() -> bool:
        housekeeping.reap(config)
        return world.get(job_id).status == JobStatus.failed

    assert wait_for(reaped, timeout=20, interval=0.5)
    job = world.get(job_id)
    assert job.error_message.startswith("worker lost: no heartbeat since")
    assert len(world.tickets(job_id)) == 1
    message = world.slack.find_message("C_OPS", job.slack_message_ts)
    assert "worker lost" in message.text

    with worker_thread(config):  # Dramatiq redelivers a dead worker's message, eventually
        queue.enqueue(job_id)
        time.sleep(1)
    assert drain(15)
    assert starts(marker) == 1
    assert world.get(job_id).status == JobStatus.failed


def test_sigterm_lets_the_run_finish_within_the_grace_then_stops_it_cleanly(
        maria_world, config_for, redis_server, tmp_path):
    world = maria_world
    config = config_for(world, redis_url=redis_server.url, shutdown_grace=1.0)
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "60"})
    queue = DramatiqJobQueue(redis_server.url)

    with worker_process(config, tmp_path) as process:
        queue.enqueue(job_id)
        assert wait_for(lambda: starts(marker) == 1, timeout=40), (
            (tmp_path / "worker.log").read_text())
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)

    job = world.get(job_id)
    assert code == 0
    assert job.status == JobStatus.failed
    assert job.error_message.startswith("interrupted: the worker shut down")
    assert starts(marker) == 1
