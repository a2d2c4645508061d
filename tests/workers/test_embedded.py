"""The embedded default: in-process broker, worker threads and housekeeping, no Redis."""

from __future__ import annotations

import time

import pytest

from core.errors import QueueUnavailable
from db.models import JobStatus
from workers.broker import reset_broker
from workers.embedded import start_embedded
from workers.queue import DramatiqJobQueue


@pytest.fixture(autouse=True)
def _fresh_broker():
    reset_broker()
    yield
    reset_broker()


def test_jobs_on_one_server_run_one_after_the_other_and_the_second_says_it_waits(
        sqlite_world, config_for, tmp_path):
    world, fake = sqlite_world, sqlite_world.slack
    first = world.job("slow", extra_vars={"marker": str(tmp_path / "m1"), "seconds": "2"})
    second = world.job("ok")
    workers = start_embedded(config_for(world), threads=2)
    try:
        assert workers.queue.enqueue(first)
        time.sleep(0.5)
        assert workers.queue.enqueue(second)
        assert workers.join(60)
    finally:
        workers.stop()

    a, b = world.get(first), world.get(second)
    assert a.status == b.status == JobStatus.success
    assert b.started_at >= a.completed_at  # never both on the server at once
    waiting = [c for c in fake.calls_to("chat.update")
               if c.params.get("ts") == b.slack_message_ts
               and "waiting for local" in str(c.params.get("text"))]
    assert waiting


def test_the_housekeeping_thread_reaps_a_job_left_running(sqlite_world, config_for):
    world = sqlite_world
    job_id = world.job("ok")
    world.set(job_id, status=JobStatus.running)  # as if its worker had died
    workers = start_embedded(config_for(world, reaper_grace=1.0, housekeeping_interval=0.2))
    try:
        deadline = time.monotonic() + 10
        while world.get(job_id).status == JobStatus.running and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        workers.stop()

    assert world.get(job_id).error_message.startswith("worker lost")


def test_enqueue_on_an_unreachable_redis_fails_within_two_seconds():
    queue = DramatiqJobQueue("redis://127.0.0.1:1/0")

    t0 = time.monotonic()
    with pytest.raises(QueueUnavailable) as error:
        queue.enqueue("some-job")

    assert time.monotonic() - t0 < 2.0
    assert "will start automatically" in str(error.value)
