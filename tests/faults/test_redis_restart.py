"""Redis restarted without persistence while jobs wait in its queue: real `playbot clock`
and `playbot worker` processes, MariaDB, a private Redis, the fake Slack.

Ends with every acked launch run exactly once, nothing pending or running, one Slack
message per job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.jobs import mark_enqueued
from db.clock import now as db_time
from db.models import ClockState, Job, JobStatus
from tests.faults.clock_support import playbot, playbot_env, starts, wait_for
from tests.workers.conftest import (  # noqa: F401
    config_for,
    fake_slack,
    maria_world,
    playbook_dir,
)
from workers import housekeeping
from workers.broker import reset_broker
from workers.queue import DramatiqJobQueue

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.mariadb]


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


def test_jobs_queued_when_redis_restarts_without_aof_each_run_exactly_once(
        maria_world, private_redis, tmp_path):  # noqa: F811 - the fixture imported above
    world = maria_world
    env = playbot_env(world, private_redis.url, tmp_path)
    with playbot(["clock"], env, tmp_path / "clock.log"):
        # given a clock that has seen the queue, and three acked launches queued in Redis
        # with no worker running yet
        def epoch_seen() -> bool:
            with world.factory() as s:
                return s.execute(select(ClockState.value)
                                 .where(ClockState.name == "queue_epoch")).scalar() is not None

        assert wait_for(epoch_seen, 30), (tmp_path / "clock.log").read_text()
        markers = [tmp_path / f"marker-{i}" for i in range(3)]
        queue = DramatiqJobQueue(private_redis.url)
        jobs = []
        for marker in markers:
            job_id = world.job("ok", extra_vars={"marker": str(marker)})
            with world.factory.begin() as s:
                mark_enqueued(s, job_id, queue.enqueue(job_id))
            jobs.append(job_id)

        # when Redis restarts without persistence (the queue is gone) and a worker starts
        private_redis.restart()
        reset_broker()
        with playbot(["worker", "--threads", "2"], env, tmp_path / "worker.log"):
            # then the clock sees the new epoch and sends each lost job once; each runs once
            def all_done() -> bool:
                return all(world.get(j).status == JobStatus.success for j in jobs)

            assert wait_for(all_done, 90), (
                [world.get(j).status for j in jobs],
                (tmp_path / "clock.log").read_text()[-3000:],
                (tmp_path / "worker.log").read_text()[-3000:])

    assert [starts(m) for m in markers] == [1, 1, 1]
    for job_id in jobs:
        job = world.get(job_id)
        assert job.dramatiq_message_id  # the launch's message id is kept, not overwritten
        assert job.outcome == JobStatus.success
    # one channel message per job (each edited in place), none posted twice
    assert len(world.slack.channel_messages("C_OPS")) == len(jobs)
    assert "requeued pending job" in (tmp_path / "clock.log").read_text()


def test_a_long_backlog_is_never_multiplied_but_a_restart_resends_it_once(
        maria_world, private_redis, config_for, tmp_path):  # noqa: F811 - fixtures above
    # given three launches waiting in Redis for ten minutes behind a backlog (no worker)
    world = maria_world
    config = config_for(world, redis_url=private_redis.url)
    queue = DramatiqJobQueue(private_redis.url)
    sent: list[str] = []

    def send(job_id: str) -> str:
        sent.append(job_id)
        return queue.enqueue(job_id)

    housekeeping.requeue(config, send=send)  # the clock has seen this Redis for an hour
    with world.factory.begin() as s:
        s.execute(update(ClockState).where(ClockState.name == "queue_epoch")
                  .values(updated_at=db_time(s) - timedelta(hours=1)))
    jobs = [world.job("ok") for _ in range(3)]
    for job_id in jobs:
        with world.factory.begin() as s:
            mark_enqueued(s, job_id, queue.enqueue(job_id))
        with world.factory.begin() as s:
            s.execute(update(Job).where(Job.job_id == job_id)
                      .values(enqueued_at=db_time(s) - timedelta(minutes=10)))

    # when the clock passes, again and again, nothing is sent twice
    for _ in range(3):
        assert housekeeping.requeue(config, send=send) == []
    # and when Redis restarts without persistence, each is sent once more, and only once
    private_redis.restart()
    reset_broker()
    queue = DramatiqJobQueue(private_redis.url)
    assert sorted(housekeeping.requeue(config, send=send)) == sorted(jobs)
    assert housekeeping.requeue(config, send=send) == []
    assert sorted(sent) == sorted(jobs)
