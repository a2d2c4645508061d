"""Clock faults with real processes on MariaDB and a private Redis, Slack faked at its HTTP
boundary: a worker process whose clock is ten minutes off (`clock_support`), and two
`playbot clock`
processes at once.

Every time the reaper and the requeuer compare is the database's, so a skewed worker's
live job is never reaped and a skewed dead worker's job is reaped on time; two clocks reap,
requeue and archive each thing once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from db.clock import now as db_time
from db.models import Job, JobLog, JobStatus
from tests.faults.clock_support import playbot, playbot_env, starts, wait_for
from tests.workers.conftest import fake_slack, maria_world, playbook_dir  # noqa: F401
from workers.broker import reset_broker
from workers.queue import DramatiqJobQueue
from workers.retention import read_archive

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.mariadb]


@pytest.fixture(autouse=True)
def _fresh_broker() -> Iterator[None]:
    reset_broker()
    yield
    reset_broker()


def _db_now(world):
    with world.factory() as s:
        return db_time(s)


def test_a_worker_ten_minutes_behind_runs_its_job_to_the_end_without_being_reaped(
        maria_world, private_redis, tmp_path):  # noqa: F811 - the fixture imported above
    # given a clock with a 5 s reaper grace, and a worker whose clock is ten minutes behind
    world = maria_world
    env = playbot_env(world, private_redis.url, tmp_path)
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "12"})
    with playbot(["clock"], env, tmp_path / "clock.log"), \
            playbot(["worker", "--threads", "1"], env, tmp_path / "worker.log", skew=-600):
        # when it runs a 12 s playbook (more than twice the grace)
        DramatiqJobQueue(private_redis.url).enqueue(job_id)
        assert wait_for(lambda: world.get(job_id).status.is_final, 90), (
            (tmp_path / "worker.log").read_text()[-3000:])

    # then the job succeeded, once, and its times are the database's, not the worker's
    job = world.get(job_id)
    assert job.status == JobStatus.success, job.error_message
    assert starts(marker) == 1
    now = _db_now(world)
    assert now - timedelta(minutes=2) < job.started_at < job.completed_at <= now
    assert job.completed_at - job.started_at >= timedelta(seconds=12)


def test_a_dead_worker_ten_minutes_ahead_has_its_job_reaped_within_the_grace(
        maria_world, private_redis, tmp_path):  # noqa: F811 - the fixture imported above
    # given a worker whose clock is ten minutes ahead, running a long playbook
    world = maria_world
    env = playbot_env(world, private_redis.url, tmp_path)
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "120"})
    with playbot(["worker", "--threads", "1"], env, tmp_path / "worker.log",
                 skew=+600) as worker:
        DramatiqJobQueue(private_redis.url).enqueue(job_id)
        assert wait_for(lambda: starts(marker) == 1, 60), (
            (tmp_path / "worker.log").read_text()[-3000:])
        # when it dies
        worker.kill()
        worker.wait(10)
    died = _db_now(world)

    # then an honest clock reaps the job within the grace and a pass, not ten minutes later
    with playbot(["clock"], env, tmp_path / "clock.log"):
        assert wait_for(lambda: world.get(job_id).status == JobStatus.failed, 45), (
            (tmp_path / "clock.log").read_text()[-3000:])
    job = world.get(job_id)
    assert job.error_message.startswith("worker lost: no heartbeat since")
    assert job.completed_at - died < timedelta(seconds=30)
    assert len(world.tickets(job_id)) == 1
    assert starts(marker) == 1


def test_two_clocks_reap_requeue_and_archive_each_thing_once(
        maria_world, private_redis, tmp_path):  # noqa: F811 - the fixture imported above
    # given a job whose worker died, a launch whose message never reached Redis, and three
    # finished jobs with old logs
    world = maria_world
    env = playbot_env(world, private_redis.url, tmp_path, PLAYBOT_LOG_RETENTION_DAYS="1")
    now = _db_now(world)
    dead = world.job("ok")
    world.set(dead, status=JobStatus.running, started_at=now - timedelta(minutes=5),
              heartbeat_at=now - timedelta(minutes=5))
    with world.factory.begin() as s:
        s.execute(update(Job).where(Job.job_id == dead)
                  .values(running_server_id=Job.server_id))
    marker = tmp_path / "marker"
    never_sent = world.job("ok", server="other", extra_vars={"marker": str(marker)})
    world.set(never_sent, created_at=now - timedelta(minutes=1))
    old_jobs = []
    for _ in range(3):
        job_id = world.job("ok", server="other", status=JobStatus.success)
        moment = now - timedelta(days=100)
        world.set(job_id, completed_at=moment, started_at=moment, created_at=moment)
        with world.factory.begin() as s:
            s.add_all(JobLog(job_id=world.job_pk(job_id), line_number=n,
                             content=f"line {n}", timestamp=moment) for n in range(1, 3_001))
        old_jobs.append(job_id)

    # when two clocks run at once, and a worker
    with playbot(["clock"], env, tmp_path / "clock-1.log"), \
            playbot(["clock"], env, tmp_path / "clock-2.log"), \
            playbot(["worker", "--threads", "2"], env, tmp_path / "worker.log"):
        def settled() -> bool:
            return (world.get(dead).status == JobStatus.failed
                    and world.get(never_sent).status == JobStatus.success
                    and all(world.get(j).status == JobStatus.archived for j in old_jobs))

        if not wait_for(settled, 90):
            states = {"dead": world.get(dead).status, "never_sent": world.get(never_sent).status,
                      "old": [world.get(j).status for j in old_jobs]}
            pytest.fail(f"not settled after 90 s: {states}\n" + "\n".join(
                f"--- {name}\n" + (tmp_path / name).read_text()[-4000:]
                for name in ("clock-1.log", "clock-2.log", "worker.log")))

    logs = (tmp_path / "clock-1.log").read_text() + (tmp_path / "clock-2.log").read_text()
    # the dead worker's job: reaped once, one ticket, posted once in its thread
    assert len(world.tickets(dead)) == 1
    job = world.get(dead)
    thread = world.slack.thread("C_OPS", job.slack_message_ts)
    assert len(thread) <= 1  # the ticket, at most once
    assert logs.count(f"job {dead} reaped") == 1
    # the never-sent launch: sent once, ran once
    assert logs.count(f"requeued pending job {never_sent}") == 1
    assert starts(marker) == 1
    # retention: one archive per job holding each line exactly once, logs gone, outcome kept
    files = sorted((tmp_path / "archive").rglob("*.jsonl.gz"))
    assert sorted(p.name for p in files) == sorted(f"{j}-1-3000.jsonl.gz" for j in old_jobs)
    for path in files:
        assert [row["line"] for row in read_archive(path)] == list(range(1, 3_001))
    assert not list((tmp_path / "archive").glob(".*.partial.gz"))
    for job_id in old_jobs:
        assert world.logs(job_id) == []
        assert world.get(job_id).outcome == JobStatus.success
    # one channel message per job: nothing posted twice
    assert len(world.slack.channel_messages("C_OPS")) == 2 + len(old_jobs)
