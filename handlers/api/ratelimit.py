"""The API's rate limit: a moving window per caller key, with the `limits` library.

Storage: Redis (`REDIS_URL`) so that every web process counts the same requests, else this
process's memory. A caller key is `token:<hash prefix>`, `link:<user id>` or
`addr:<client address>`; failed authentications are also counted per address, so that
guessing tokens is slowed down as much as using one.
"""

from __future__ import annotations

import logging
import math
import time

from limits import parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from handlers.api.problems import RateLimited

log = logging.getLogger(__name__)


class RateLimit:
    """`check(key)` raises RateLimited when `key` is over any of the rates."""

    def __init__(self, rates: str, redis_url: str | None = None) -> None:
        self.rates = parse_many(rates)
        storage = storage_from_string(redis_url) if redis_url else MemoryStorage()
        self.limiter = MovingWindowRateLimiter(storage)

    def check(self, key: str) -> None:
        for rate in self.rates:
            try:
                allowed = self.limiter.hit(rate, "playbot-api", key)
            except Exception as exc:  # noqa: BLE001 - a limiter outage must not stop the API
                log.warning("rate limiter unavailable, request let through: %s", exc)
                return
            if not allowed:
                reset, _ = self.limiter.get_window_stats(rate, "playbot-api", key)
                wait = max(1, math.ceil(reset - time.time()))
                raise RateLimited(
                    f"Too many requests: at most {rate.amount} per {_per(rate)} for one "
                    f"token. Try again in {wait} s.", retry_after=wait)


def _per(rate) -> str:  # type: ignore[no-untyped-def]
    unit = rate.GRANULARITY.name
    return unit if rate.multiples == 1 else f"{rate.multiples} {unit}s"
