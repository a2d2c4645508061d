"""`DramatiqJobQueue`: the `core.queue.JobQueue` the Slack app, console and CLI enqueue with.

`enqueue(job_id)` sends a `run_job` message and returns its Dramatiq message id. When Redis
cannot be reached it raises `core.errors.QueueUnavailable` within about two seconds (the
broker's client has short timeouts and one immediate retry); the job stays `pending` and the
clock sends it once Redis is back.
"""

from __future__ import annotations

import logging

import dramatiq
import redis

from core.errors import QueueUnavailable
from workers import actors
from workers.broker import setup_broker

log = logging.getLogger(__name__)


class DramatiqJobQueue:
    """Enqueues jobs on the broker of `redis_url` (None: the in-process broker)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url
        self.broker = setup_broker(redis_url)

    def enqueue(self, job_id: str) -> str:
        """Send the job to the workers; return the message id. Raises QueueUnavailable."""
        try:
            return actors.declare(self.broker)["run_job"].send(job_id).message_id
        except (redis.RedisError, dramatiq.errors.BrokerError, OSError) as exc:
            log.warning("could not enqueue job %s: %s", job_id, exc)
            raise QueueUnavailable(
                "The job queue is unreachable right now; the job is saved and will start "
                "automatically once the queue is back."
            ) from exc
