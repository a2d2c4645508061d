"""The Dramatiq broker: Redis when REDIS_URL is set, else an in-process StubBroker.

`setup_broker(redis_url)` is idempotent: the same URL returns the same broker; another URL
closes the old one and builds a new one. Actors are declared on it by `workers.actors`
(which imports this module, never the other way round), never at import time, so the order
of imports cannot bind them to a wrong global broker.

Middleware, chosen on purpose (Dramatiq's defaults are not used):
- TimeLimit: a backstop; `run_job` sets its own limit, longer than any playbook timeout.
- Retries(max_retries=0): nothing is retried by the broker; a playbook must not run twice.
- CurrentMessage: actors can name their message in logs.
- DatabaseMiddleware, LogContextMiddleware: a DB session and log context per message.
Left out: AgeLimit (an old job still runs: the database decides), Callbacks/Pipelines
(unused), ShutdownNotifications (shutdown is handled by cancelling the run cleanly).

The Redis client fails fast (`workers.redis_conn`), so `enqueue` raises within about two
seconds when Redis is down.
"""

from __future__ import annotations

import threading

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware, Retries, TimeLimit

from workers.middleware import DatabaseMiddleware, LogContextMiddleware
from workers.redis_conn import redis_client

#: Dramatiq's worker heartbeat in Redis: a dead worker's unacked messages go back to the
#: queue after this long (the claim makes the redelivery harmless). A configured process
#: uses its WorkerConfig.redelivery_after (PLAYBOT_REDELIVERY_SECONDS) instead.
REDIS_HEARTBEAT_TIMEOUT_MS = 60_000
#: Dramatiq looks for dead workers on this many of a million Redis commands by default;
#: a shorter heartbeat timeout is looked for proportionally more often.
REDIS_MAINTENANCE_CHANCE = 1000
DEFAULT_TIME_LIMIT_MS = 10 * 60 * 1000

_lock = threading.RLock()
_broker: dramatiq.Broker | None = None
_url: str | None = None


def _database_url() -> str:
    from workers.config import current

    return current().database_url


def middleware() -> list[Middleware]:
    """The middleware of every Playbot broker, in order."""
    return [
        TimeLimit(time_limit=DEFAULT_TIME_LIMIT_MS),
        Retries(max_retries=0),
        CurrentMessage(),
        LogContextMiddleware(),
        DatabaseMiddleware(_database_url),
    ]


def _heartbeat_timeout_ms() -> int:
    from workers.config import current

    try:
        return int(current().redelivery_after * 1000)
    except RuntimeError:  # not configured (a web process only sends)
        return REDIS_HEARTBEAT_TIMEOUT_MS


def redis_broker(url: str) -> RedisBroker:
    """The Redis broker of `url` with Playbot's middleware and dead-worker timing."""
    heartbeat = _heartbeat_timeout_ms()
    chance = min(1_000_000, REDIS_MAINTENANCE_CHANCE * REDIS_HEARTBEAT_TIMEOUT_MS // heartbeat)
    return RedisBroker(client=redis_client(url), middleware=middleware(), namespace="playbot",
                       heartbeat_timeout=heartbeat, maintenance_chance=chance)


def setup_broker(redis_url: str | None) -> dramatiq.Broker:
    """The process's broker for `redis_url` (None: in-process). Its actors are declared by
    `workers.actors` (`declare`, or on first use by `get`)."""
    global _broker, _url
    with _lock:
        if _broker is not None and _url == redis_url:
            return _broker
        if _broker is not None:
            _broker.close()
        broker: dramatiq.Broker = (redis_broker(redis_url) if redis_url
                                   else StubBroker(middleware=middleware()))
        dramatiq.set_broker(broker)
        _broker, _url = broker, redis_url
        return broker


def current_broker() -> dramatiq.Broker:
    """The broker made by `setup_broker`. Raises RuntimeError when there is none."""
    broker = _broker
    if broker is None:
        raise RuntimeError("no broker: call workers.broker.setup_broker() first")
    return broker


def reset_broker() -> None:
    """Close and forget the broker (tests, and processes switching configuration)."""
    global _broker, _url
    with _lock:
        if _broker is not None:
            _broker.close()
        _broker, _url = None, None

