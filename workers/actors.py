"""The Dramatiq actors: thin functions taking ids only, declared on a broker on demand.

- `run_job(job_id)`: claim and run one job (`workers.execute`). `max_retries=0`: a playbook
  is never re-run by the broker; `time_limit` is the longest playbook limit plus a margin,
  so ansible-runner's own timeout always ends a run first.
- `reap()`, `requeue()`, `expire_approvals()`, `archive_logs()`: housekeeping
  (`workers.housekeeping`), for operators who prefer to trigger them through the queue; the
  clock process and the embedded runner call the same functions directly.

Actors are declared by `declare(broker)` (by the worker, the queue, or `get` on first use), not at
import, so they always belong to the broker this process configured; `get(name)` returns
the actor of the current broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from workers import housekeeping
from workers.broker import current_broker
from workers.config import MAX_JOB_TIMEOUT_SECONDS, current
from workers.execute import execute_job
from workers.middleware import message_session

log = logging.getLogger(__name__)

JOBS_QUEUE = "playbot_jobs"
HOUSEKEEPING_QUEUE = "playbot_housekeeping"
RUN_JOB_TIME_LIMIT_MS = (MAX_JOB_TIMEOUT_SECONDS + 15 * 60) * 1000
HOUSEKEEPING_TIME_LIMIT_MS = 30 * 60 * 1000


def run_job(job_id: str) -> None:
    """Claim and run the job `job_id` (a duplicate delivery does nothing)."""
    execute_job(job_id, current(), session=message_session(), defer=send_later)


def reap() -> None:
    """Fail running jobs whose worker stopped heartbeating."""
    housekeeping.reap(current())


def requeue() -> None:
    """Send pending jobs whose message never reached the queue, or was lost, again."""
    housekeeping.requeue(current(), send=send_job)


def expire_approvals() -> None:
    """Expire approval requests past their deadline."""
    housekeeping.expire_approvals(current(), send=send_job)


def archive_logs() -> None:
    """Archive and delete job logs older than the retention period."""
    housekeeping.archive_logs(current())


_ACTORS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "run_job": (run_job, {"queue_name": JOBS_QUEUE, "max_retries": 0,
                          "time_limit": RUN_JOB_TIME_LIMIT_MS}),
    "reap": (reap, {"queue_name": HOUSEKEEPING_QUEUE, "max_retries": 0,
                    "time_limit": HOUSEKEEPING_TIME_LIMIT_MS}),
    "requeue": (requeue, {"queue_name": HOUSEKEEPING_QUEUE, "max_retries": 0,
                          "time_limit": HOUSEKEEPING_TIME_LIMIT_MS}),
    "expire_approvals": (expire_approvals, {"queue_name": HOUSEKEEPING_QUEUE,
                                            "max_retries": 0,
                                            "time_limit": HOUSEKEEPING_TIME_LIMIT_MS}),
    "archive_logs": (archive_logs, {"queue_name": HOUSEKEEPING_QUEUE, "max_retries": 0,
                                    "time_limit": HOUSEKEEPING_TIME_LIMIT_MS}),
}


def queue_names() -> set[str]:
    """The queues of these actors (what a `playbot worker`'s job threads consume)."""
    return {options["queue_name"] for _fn, options in _ACTORS.values()}


_lock = threading.Lock()
_declared: dict[int, dict[str, dramatiq.Actor[Any, Any]]] = {}


def declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every actor on `broker` (once per broker); return them by name."""
    with _lock:
        actors = _declared.get(id(broker))
        if actors is not None and all(name in broker.actors for name in actors):
            return actors
        actors = {}
        for name, (fn, options) in _ACTORS.items():
            actors[name] = dramatiq.actor(fn, broker=broker, actor_name=name, **options)
        _declared[id(broker)] = actors
        return actors


def get(name: str) -> dramatiq.Actor[Any, Any]:
    """The actor `name` declared on the current broker."""
    return declare(current_broker())[name]


def send_job(job_id: str) -> str:
    """Send a run_job message now; return its message id (broker errors propagate)."""
    return get("run_job").send(job_id).message_id


def send_later(job_id: str, delay_seconds: float) -> bool:
    """Send a run_job message after a delay (a job waiting for its server); False when it
    could not be sent.

    If the broker is unreachable the job simply stays pending: the clock sends it again.
    """
    try:
        get("run_job").send_with_options(args=(job_id,), delay=int(delay_seconds * 1000))
    except (redis.RedisError, dramatiq.errors.BrokerError) as exc:
        log.warning("could not re-send waiting job %s (the clock will): %s", job_id, exc)
        return False
    return True
