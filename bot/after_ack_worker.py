"""`playbot worker`'s after-ack consumer: the Slack app's work after each ack, on Redis.

`start_after_ack_worker(settings, threads)` builds the app once (the same listeners as the
web process, request verification off: `bot.after_ack`), declares the `after_ack` actor on
the process's Redis broker and serves its queue with a Dramatiq worker of its own — its
own threads, so the playbook runs of this process (another Dramatiq worker, on the jobs
queues only) can never hold them.

Guarantees: a message this process took and did not finish (SIGKILL, OOM) is delivered
again, to any worker, once this process's heartbeat is PLAYBOT_REDELIVERY_SECONDS old; the
request store makes the repeat finish the work without answering twice (`bot.after_ack`).
On `stop()` no new message is taken, the ones taken but not begun go back to Redis, and
the ones running finish (bounded).
"""

from __future__ import annotations

import logging

import dramatiq

from bot.after_ack import (
    AFTER_ACK_QUEUE,
    AfterAckConsumer,
    AfterAckMode,
    RedisRequestStore,
    declare_actor,
)
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings
from workers.broker import setup_broker
from workers.config import WorkerConfig, configure
from workers.main import boot
from workers.redis_conn import redis_client

log = logging.getLogger(__name__)

# An idle consumer polls Redis with a growing back-off capped at this: a reply waits ~half of
# it on average for its message to be picked up, for a few cheap Redis calls a second.
IDLE_POLL_MS = 20


class AfterAckWorker:
    """The running consumer: `stop()` ends it."""

    def __init__(self, runtime: Runtime, worker: dramatiq.Worker) -> None:
        self.runtime = runtime
        self.worker = worker

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop(timeout=int(timeout * 1000))
        self.runtime.close()
        log.info("after-ack consumer stopped")


def start_after_ack_worker(settings: Settings, *, threads: int) -> AfterAckWorker:
    """Consume the after-ack queue of REDIS_URL in this process with `threads` threads.

    Raises ValueError when the Slack settings are missing (the work answers in Slack), and
    slack_sdk errors when Slack refuses the token.
    """
    if not settings.redis_url:
        raise ValueError("the after-ack consumer needs REDIS_URL")
    configure(WorkerConfig.from_settings(settings))  # the broker's middleware reads it
    broker = setup_broker(settings.redis_url)
    runtime = build_runtime(settings, verify_requests=False, after_ack=AfterAckMode.CONSUMER)
    assert runtime.app is not None
    consumer = AfterAckConsumer(runtime.app, RedisRequestStore(redis_client(settings.redis_url)))
    declare_actor(broker, consumer.run)
    boot(broker)
    worker = dramatiq.Worker(broker, queues={AFTER_ACK_QUEUE}, worker_threads=threads,
                             worker_timeout=IDLE_POLL_MS)
    # hold no more than it can work on: the rest stay in Redis for other workers
    worker.queue_prefetch = threads
    worker.start()
    log.info("after-ack consumer started: %d threads on %s", threads, AFTER_ACK_QUEUE)
    return AfterAckWorker(runtime, worker)
