"""Redis restarted without persistence while jobs wait in its queue: real `playbot clock`
and `playbot worker` processes, MariaDB, a private Redis, the fake Slack.

Ends with every acked launch run exactly once, nothing pending or running, one Slack
message per job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from core.jobs import mark_enqueued
from db.models import ClockState, JobStatus
from tests.faults.clock_support import playbot, playbot_env, starts, wait_for
from tests.workers.conftest import fake_slack, maria_world, playbook_dir  # noqa: F401
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
