"""With the real Redis-backed Dramatiq queue: jobs are enqueued; with Redis stopped the ack
still comes at once, the job is kept pending, and it is enqueued once Redis is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import OPERATOR, app_settings, seed
from tests.handlers.harness import SlackHarness, start_harness
from workers.broker import reset_broker
from workers.config import WorkerConfig
from workers.housekeeping import requeue
from workers.queue import DramatiqJobQueue

pytestmark = pytest.mark.redis


@pytest.fixture
def slack_on_redis(private_redis, fake_slack, playbook_dir, app_sqlite_url
                   ) -> Iterator[SlackHarness]:
    settings = app_settings(app_sqlite_url, fake_slack, playbook_dir,
                            redis_url=private_redis.url)
    harness = start_harness(settings, fake_slack, queue=DramatiqJobQueue(private_redis.url))
    seed(harness.session_factory, playbook_dir)
    yield harness
    harness.close()
    reset_broker()


def queued_messages(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(client.llen(key) for key in client.keys("playbot:*")
                   if client.type(key) == b"list")
    finally:
        client.close()


def test_a_job_goes_to_redis_with_its_message_id(slack_on_redis, private_redis):
    slack_on_redis.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)

    [job] = slack_on_redis.jobs()
    assert job.status == JobStatus.pending
    assert job.dramatiq_message_id and len(job.dramatiq_message_id) == 36
    assert queued_messages(private_redis.url) == 1


def test_redis_down_acks_at_once_keeps_the_job_and_it_is_enqueued_when_back(
        slack_on_redis, private_redis, app_sqlite_url):
    # given
    private_redis.stop()

    # when: the command is acked well inside Slack's 3 seconds
    started = time.monotonic()
    response = slack_on_redis.sender.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    ack_seconds = time.monotonic() - started
    slack_on_redis.wait_idle()

    # then: the job is saved, pending, not enqueued, and its message says why
    assert response.status == 200 and ack_seconds < 3
    [job] = slack_on_redis.jobs()
    assert job.status == JobStatus.pending and job.dramatiq_message_id is None
    message = slack_on_redis.fake.find_message(job.slack_channel_id, job.slack_message_ts)
    assert "queue is unreachable" in str(message.blocks)

    # when Redis is back, the workers' requeue pass sends it
    private_redis.start()
    config = WorkerConfig(database_url=app_sqlite_url, requeue_after=0)
    sent = requeue(config, send=slack_on_redis.queue.enqueue)

    assert sent == [job.job_id]
    assert slack_on_redis.job(job.job_id).dramatiq_message_id
    assert queued_messages(private_redis.url) == 1
