"""The one Redis client factory of the workers, the broker, the pacers and the queue epoch.

Every client fails fast: a 1 s connect timeout, a 2 s socket timeout and one immediate retry,
so a caller learns within about two seconds that Redis is down instead of hanging.
A leaf module: it imports nothing of Playbot's.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 2.0


def redis_client(url: str, *, connect_timeout: float = REDIS_CONNECT_TIMEOUT,
                 socket_timeout: float = REDIS_SOCKET_TIMEOUT, retries: int = 1,
                 health_check_interval: int = 15) -> redis.Redis:
    """A Redis client that gives up quickly instead of hanging the caller."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=health_check_interval,
    )
