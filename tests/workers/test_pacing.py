"""workers.pacing on real Redis: worker processes sharing one Redis share Slack's pace (one
post per interval per channel between them), and Redis trouble never slows notifications."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from db.models import JobStatus
from workers.notifier import UPDATES_KEY, JobNotifier, Limits, make_client
from workers.pacing import (
    PACER,
    ChannelPacer,
    RedisChannelPacer,
    pacer_for,
    pacing_client,
    reset_pacers,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def namespace() -> str:
    """A key namespace of this test's own on the shared Redis."""
    return f"test:{uuid.uuid4().hex[:8]}:pace:"


@pytest.fixture
def two_workers(redis_server, namespace) -> Iterator[tuple[RedisChannelPacer, RedisChannelPacer]]:
    """Two pacers with their own clients on one Redis, as two worker processes have."""
    pacers = tuple(RedisChannelPacer(pacing_client(redis_server.url), fallback=ChannelPacer(),
                                     namespace=namespace) for _ in range(2))
    yield pacers  # type: ignore[misc]
    for pacer in pacers:
        pacer.close()


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "workers.pacing" and r.levelno == logging.WARNING]


def test_a_channel_slot_taken_by_one_worker_is_not_given_to_another_until_it_frees(two_workers):
    first, second = two_workers

    taken = first.try_take("C_OPS", 0.5)
    wait = second.try_take("C_OPS", 0.5)
    again = first.try_take("C_OPS", 0.5)

    assert taken == 0.0
    assert 0.35 < wait <= 0.5
    assert 0.0 < again <= wait
    time.sleep(wait + 0.02)
    assert second.try_take("C_OPS", 0.5) == 0.0
    assert first.try_take("C_OPS", 0.5) > 0.3


def test_workers_racing_for_one_channel_get_exactly_one_slot_per_interval(two_workers):
    interval, duration = 0.25, 1.1
    slots: list[float] = []
    lock = threading.Lock()
    start = time.monotonic()

    def worker(pacer: RedisChannelPacer) -> None:
        while time.monotonic() - start < duration:
            if pacer.try_take("C_BUSY", interval) == 0.0:
                with lock:
                    slots.append(time.monotonic())
            time.sleep(0.002)

    threads = [threading.Thread(target=worker, args=(pacer,))
               for pacer in two_workers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    slots.sort()
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert 4 <= len(slots) <= 5  # 1.1 s / 0.25 s
    assert min(gaps) >= interval - 0.03


def test_channels_do_not_block_each_other(two_workers):
    first, second = two_workers

    assert first.try_take("C_ONE", 1.0) == 0.0
    assert second.try_take("C_TWO", 1.0) == 0.0
    assert second.try_take(UPDATES_KEY, 1.0) == 0.0

    assert first.try_take("C_ONE", 1.0) > 0.9
    assert second.try_take("C_TWO", 1.0) > 0.9
    assert first.try_take(UPDATES_KEY, 1.0) > 0.9


def test_pace_keys_are_namespaced_bounded_and_expire(redis_server, two_workers, namespace):
    first, _ = two_workers
    odd_key = "chat.update\x00" + "x" * 500

    first.try_take("C_OPS", 0.3)
    first.try_take(UPDATES_KEY, 0.3)
    first.try_take(odd_key, 0.3)

    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = sorted(k.decode() for k in client.keys(f"{namespace}*"))
        assert f"{namespace}c:C_OPS" in keys
        assert len(keys) == 3
        assert all(len(k) <= len(namespace) + 40 for k in keys)
        assert all(0 < client.pttl(k) <= 300 for k in keys)
        time.sleep(0.35)
        assert client.keys(f"{namespace}*") == []
    finally:
        client.close()


def test_with_redis_down_pacing_answers_at_once_in_process_and_warns_once(
        private_redis, namespace, caplog):
    caplog.set_level(logging.INFO, logger="workers.pacing")
    pacer = RedisChannelPacer(pacing_client(private_redis.url), fallback=ChannelPacer(),
                              fallback_period=0.3, namespace=namespace)
    other = RedisChannelPacer(pacing_client(private_redis.url), fallback=ChannelPacer(),
                              namespace=namespace)
    try:
        assert pacer.try_take("C_OPS", 1.0) == 0.0  # Redis answers: a connection is open
        private_redis.stop()

        started = time.monotonic()
        answers = [pacer.try_take("C_DOWN", 1.0) for _ in range(50)]
        elapsed = time.monotonic() - started
        time.sleep(0.35)  # the fallback period ends; Redis is tried again and still fails
        late = pacer.try_take("C_LATE", 1.0)

        assert elapsed < 1.0
        assert answers[0] == 0.0 and all(a > 0.9 for a in answers[1:])  # still paced
        assert late == 0.0
        assert len(_warnings(caplog)) == 1
        assert "per process" in _warnings(caplog)[0].getMessage()

        private_redis.start()
        time.sleep(0.35)
        assert pacer.try_take("C_BACK", 1.0) == 0.0
        assert other.try_take("C_BACK", 1.0) > 0.9  # the slot is in Redis again
        assert len(_warnings(caplog)) == 1
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        pacer.close()
        other.close()


def test_a_process_uses_one_redis_pacer_per_url_and_the_in_process_one_without_redis(
        redis_server):
    try:
        shared = pacer_for(redis_server.url)

        assert pacer_for(redis_server.url) is shared
        assert isinstance(shared, RedisChannelPacer)
        assert pacer_for(None) is PACER
    finally:
        reset_pacers()


def test_two_workers_notifying_one_channel_post_at_most_once_a_second(
        sqlite_world, fake_slack, two_workers):
    client = make_client("xoxb-test", fake_slack.api_url)
    jobs = [sqlite_world.job() for _ in range(2)]
    notifiers = [JobNotifier(client, sqlite_world.get(job_id), jobs_channel="C_JOBS",
                             session_factory=sqlite_world.factory,
                             pacer=pacer, limits=Limits(post_interval=1.0))
                 for job_id, pacer in zip(jobs, two_workers, strict=True)]

    for job_id, notifier in zip(jobs, notifiers, strict=True):  # two posts' worth each
        notifier.lines([(f"{job_id[:8]} line {i:04d} " + "x" * 20, "INFO") for i in range(450)])
    for job_id, notifier in zip(jobs, notifiers, strict=True):
        sqlite_world.set(job_id, status=JobStatus.success)
        notifier.finish(sqlite_world.get(job_id), total_lines=450)
    assert all(notifier.join(10) for notifier in notifiers)

    posts = sorted(c.at for c in fake_slack.calls_to("chat.postMessage")
                   if c.params.get("thread_ts") and c.params.get("channel") == "C_OPS")
    gaps = [b - a for a, b in zip(posts, posts[1:], strict=False)]
    assert len(posts) == 4
    assert min(gaps) >= 0.95
