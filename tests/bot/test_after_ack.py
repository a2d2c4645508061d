"""The work after each ack as a broker message (`bot.after_ack`), as `playbot web` sends it on
MariaDB + Redis and `playbot worker` consumes it (`bot.after_ack_worker`): the same answers
in Slack and the same rows as before, what the ack decided reaches the consumer, a repeated
delivery finishes the work without answering twice, and with Redis down the user is still
answered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
import redis
from slack_bolt.request import BoltRequest
from sqlalchemy import update

from bot.after_ack import (
    AFTER_ACK_QUEUE,
    REQUEST_OPTION,
    STORE_KEY,
    AfterAckMode,
    declare_sender,
)
from bot.after_ack_worker import AfterAckWorker, start_after_ack_worker
from bot.runtime import build_runtime
from bot.settings import Settings
from bot.web import make_server
from db.models import Job, JobStatus
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.fixtures import OPERATOR, app_settings, seed
from tests.handlers.harness import SlackHarness, text_value
from tests.handlers.test_run_modal import VAR, choose, deploy_values, open_modal
from workers.broker import reset_broker, setup_broker

pytestmark = pytest.mark.redis

QUEUED_MESSAGES = f"playbot:{AFTER_ACK_QUEUE}.msgs"  # Dramatiq's Redis broker keeps them here


class BrokerHarness(SlackHarness):
    """The harness for a web process whose after-ack work is another consumer's: a request
    is done when its message is acknowledged (Dramatiq deletes it from the queue's
    messages) and the request store has no unfinished request left."""

    redis: redis.Redis

    def wait_idle(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            keys = list(self.redis.scan_iter(STORE_KEY.format("*")))
            if (not self.redis.hlen(QUEUED_MESSAGES)
                    and all(self.redis.hget(key, "done") for key in keys)):
                return
            time.sleep(0.02)
        raise AssertionError("the after-ack work did not finish")


@dataclass
class Consumer:
    settings: Settings
    worker: AfterAckWorker | None = None

    def start(self) -> None:
        self.worker = start_after_ack_worker(self.settings, threads=2)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(timeout=10)
            self.worker = None


@pytest.fixture
def consumer(fake_slack, playbook_dir, mariadb_url, private_redis) -> Iterator[Consumer]:
    settings = app_settings(mariadb_url, fake_slack, playbook_dir, redis_url=private_redis.url)
    handle = Consumer(settings)
    handle.start()
    yield handle
    handle.stop()
    reset_broker()


@pytest.fixture
def slack(consumer, fake_slack, playbook_dir, private_redis) -> Iterator[BrokerHarness]:
    """The app served as `playbot web` serves it with REDIS_URL, its work consumed apart."""
    runtime = build_runtime(consumer.settings, after_ack=AfterAckMode.BROKER)
    server = make_server(runtime, "127.0.0.1", 0).start()
    harness = BrokerHarness(fake_slack, runtime, server, queue=None)  # type: ignore[arg-type]
    harness.redis = redis.Redis.from_url(private_redis.url)
    seed(harness.session_factory, playbook_dir)
    yield harness
    harness.close()
    harness.redis.close()


def stored(harness: BrokerHarness) -> dict[str, dict[bytes, bytes]]:
    return {key.decode().rsplit(":", 1)[1]: harness.redis.hgetall(key)
            for key in harness.redis.scan_iter(STORE_KEY.format("*"))}


def queued(harness: BrokerHarness) -> list[dramatiq.Message[Any]]:
    """The after-ack messages waiting in Redis for a consumer."""
    return [dramatiq.Message.decode(raw)
            for raw in harness.redis.hvals(QUEUED_MESSAGES)]


def deliver_again(harness: BrokerHarness, message: dramatiq.Message[Any]) -> Any:
    """What Dramatiq does with the message of a worker that died mid-way: the same message
    (the same request id, the same request) is delivered again; the first delivery was
    counted."""
    request_id = message.kwargs["request_id"]
    harness.redis.hdel(STORE_KEY.format(request_id), "done")
    start = len(harness.fake.calls)
    declare_sender(setup_broker(harness.runtime.settings.redis_url)).send_with_options(
        kwargs={"request_id": request_id}, **{REQUEST_OPTION: message.options[REQUEST_OPTION]})
    harness.wait_idle()
    return harness.fake.calls[start:]


def test_a_launch_is_done_by_the_consumer_and_looks_the_same_in_slack(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.4", user=OPERATOR)

    assert result.status == 200
    [job] = slack.jobs()
    assert job.status == JobStatus.pending
    assert job.extra_vars["version"] == "2.4"
    assert job.dramatiq_message_id  # enqueued to the real Redis by the consumer
    [message] = result.posted
    assert job.job_id[:8] in message.text or job.job_id[:8] in str(message.blocks)
    [row] = slack.audit("job.launch")
    assert row.details["server"] == "local"
    # the request left Redis with its message once done; only the small done mark stays
    [(request_id, fields)] = stored(slack).items()
    assert fields == {b"deliveries": b"1", b"done": b"1"}


def test_a_mistake_is_answered_from_the_consumer(slack):
    result = slack.command(ids.CMD_RUN_PLAYBOOK, "deploy lokal version=2.4", user=OPERATOR)

    assert "local" in result.reply_text  # the closest server is suggested
    assert slack.jobs() == []


def test_what_the_ack_decided_reaches_the_consumer(slack):
    # the modal's field errors are found before the ack; the lazy half audits the refusal
    view = choose(slack, open_modal(slack), "deploy")

    result = slack.submit(view, deploy_values(**{VAR + "version": text_value("latest")}),
                          user=OPERATOR)

    assert result.ack["response_action"] == "errors"
    assert slack.jobs() == []
    [row] = slack.audit("job.launch")
    assert row.details["outcome"] == "denied"


def test_a_socket_mode_command_goes_through_the_broker_too(slack):
    # given: a slash command as Socket Mode delivers it (a parsed payload, no HTTP signature)
    form = {"team_id": "T_PLAYBOT", "channel_id": "C_OPS", "user_id": OPERATOR,
            "user_name": "operator", "command": ids.CMD_RUN_PLAYBOOK,
            "text": "deploy local version=3.1", "api_app_id": "A_PLAYBOT",
            "response_url": slack.fake.response_url(OPERATOR), "trigger_id": "trigger-sm-1"}

    # when: the app dispatches it (what SocketModeHandler does with each envelope)
    response = slack.runtime.app.dispatch(BoltRequest(body=form, mode="socket_mode"))
    slack.wait_idle()

    # then: acked at once, and the launch was done by the consumer
    assert response.status == 200
    [job] = slack.jobs()
    assert job.extra_vars["version"] == "3.1" and job.dramatiq_message_id


def test_the_request_waits_in_redis_until_a_consumer_takes_it(slack, consumer):
    # given: no consumer running (every worker down)
    consumer.stop()

    # when: a launch is acked
    response = slack.sender.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.6",
                                    user=OPERATOR, channel="C_OPS")

    # then: nothing is done yet, but its message, carrying the request, is in Redis (and
    # no log line of Dramatiq's, which names a message by its arguments, shows the request)
    assert response.status == 200
    [message] = queued(slack)
    assert "version%3D2.6" in message.options[REQUEST_OPTION]  # the signed body, as sent
    assert "version" not in str(message)
    assert stored(slack) == {}
    assert slack.redis.llen(f"playbot:{AFTER_ACK_QUEUE}") == 1
    assert slack.jobs() == []

    # and when a worker starts, the launch is done once
    consumer.start()
    slack.wait_idle()
    [job] = slack.jobs()
    assert job.dramatiq_message_id and job.slack_message_ts


def test_a_repeated_delivery_of_finished_launch_work_answers_nothing_twice(slack, consumer):
    # given: a launch whose request was captured while it waited for a consumer
    consumer.stop()
    slack.sender.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.7", user=OPERATOR)
    [message] = queued(slack)
    consumer.start()
    slack.wait_idle()
    [job] = slack.jobs()

    # when: the same message is delivered again (its first worker died before acking it)
    calls = deliver_again(slack, message)

    # then: no second job, no second message, no "already received" answer
    assert [j.job_id for j in slack.jobs()] == [job.job_id]
    assert [c.method for c in calls] == []


def test_a_repeated_delivery_posts_the_run_message_the_first_one_did_not_record(slack,
                                                                               consumer):
    # given: a launch done, then its message forgotten, as if its first delivery died
    # between creating the job and recording the message
    consumer.stop()
    slack.sender.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.8", user=OPERATOR)
    [message] = queued(slack)
    consumer.start()
    slack.wait_idle()
    [job] = slack.jobs()
    with transaction(slack.session_factory) as session:
        session.execute(update(Job).values(slack_channel_id=None, slack_message_ts=None))

    # when: the message is delivered again
    calls = deliver_again(slack, message)

    # then: the run message is posted (once), the job is not enqueued a second time, and
    # nothing else is said
    assert [c.method for c in calls] == ["chat.postMessage"]
    [again] = slack.jobs()
    assert again.slack_message_ts and again.dramatiq_message_id == job.dramatiq_message_id


def test_with_redis_down_the_ack_is_prompt_and_the_work_runs_in_the_web_process(
        slack, private_redis):
    # given
    private_redis.stop()

    # when: a launch arrives
    started = time.monotonic()
    response = slack.sender.command(ids.CMD_RUN_PLAYBOOK, "deploy local version=2.9",
                                    user=OPERATOR, channel="C_OPS")
    ack_seconds = time.monotonic() - started
    assert slack.runtime.background.wait_idle(30)

    # then: acked inside Slack's 3 seconds, the job saved and its message says the queue is
    # down (the web process did the work itself)
    assert response.status == 200 and ack_seconds < 3
    [job] = slack.jobs()
    assert job.status == JobStatus.pending and job.dramatiq_message_id is None
    message = slack.fake.find_message(job.slack_channel_id, job.slack_message_ts)
    assert "queue is unreachable" in str(message.blocks)
