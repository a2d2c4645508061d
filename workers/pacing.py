"""Pacing of the workers' Slack posts: at most one post per interval per key (a channel id,
or `notifier.UPDATES_KEY` for the workspace-wide `chat.update` pace).

- `ChannelPacer` paces the notifiers of one process (an in-process dict). It is what the
  embedded runner uses (one process), and the fallback of the shared pacer.
- `RedisChannelPacer` paces every worker process sharing one Redis: the slot of a key is a
  Redis key `playbot:pace:<key>` set with `SET NX PX <interval>` in a MULTI/EXEC together
  with `PTTL`, so "take the slot, or learn when it frees" is one atomic round trip. With
  several `playbot worker` processes posting to one channel, Slack still sees about one
  post per second there instead of one per process.
- `pacer_for(redis_url)`: the pacer of this process for a configuration (one Redis client
  per URL and process, with short timeouts; the in-process `PACER` without Redis).

Redis trouble never slows or breaks a job's notifications: on a Redis error the shared
pacer paces in-process for `fallback_period` seconds (30 s), logs one warning per outage,
then tries Redis again. Its client gives up after 0.5 s and never retries.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from typing import Protocol

import redis

from workers.redis_conn import redis_client

log = logging.getLogger(__name__)

NAMESPACE = "playbot:pace:"
FALLBACK_PERIOD = 30.0
REDIS_TIMEOUT = 0.5
#: Keys that are plain Slack-style ids are used as they are; anything else is hashed.
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The wait reported when Redis answered neither "taken" nor a usable time to live.
_SHORT_WAIT = 0.05


class Pacer(Protocol):
    """What the notifier needs of a pacer."""

    def try_take(self, channel: str, interval: float) -> float:
        """0.0 if a post may go now (the slot is taken), else seconds until the next slot."""
        ...


class ChannelPacer:
    """At most one thread post per `interval` seconds per channel, across this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def try_take(self, channel: str, interval: float) -> float:
        """0.0 if a post may go now (the slot is taken), else seconds until the next slot."""
        now = time.monotonic()
        with self._lock:
            due = self._next.get(channel, 0.0)
            if due > now:
                return due - now
            self._next[channel] = now + interval
            if len(self._next) > 10_000:  # bounded: forget slots long gone
                self._next = {k: v for k, v in self._next.items() if v > now}
            return 0.0


PACER = ChannelPacer()


def redis_key(key: str, namespace: str = NAMESPACE) -> str:
    """The Redis key of a pacing key: `<namespace>c:<id>` for a plain id (a Slack channel id),
    `<namespace>h:<sha256 prefix>` for anything else; never longer than about 80 bytes."""
    if _PLAIN_KEY.match(key):
        return f"{namespace}c:{key}"
    return f"{namespace}h:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


class RedisChannelPacer:
    """At most one post per `interval` seconds per key, across every process on one Redis.

    fallback: the in-process pacer used while Redis fails (default: this process's PACER).
    fallback_period: how long to keep using it after a Redis error before trying Redis again.
    """

    def __init__(self, client: redis.Redis, *, fallback: ChannelPacer | None = None,
                 fallback_period: float = FALLBACK_PERIOD, namespace: str = NAMESPACE) -> None:
        self._client = client
        self._fallback = fallback if fallback is not None else PACER
        self._fallback_period = fallback_period
        self._namespace = namespace
        self._lock = threading.Lock()
        self._fallback_until = 0.0
        self._degraded = False  # in an outage (warned once), until Redis answers again

    def try_take(self, channel: str, interval: float) -> float:
        """0.0 if a post may go now (the slot is taken), else seconds until the next slot."""
        if time.monotonic() < self._fallback_until:
            return self._fallback.try_take(channel, interval)
        try:
            wait = self._take(redis_key(channel, self._namespace), interval)
        except redis.RedisError as exc:
            self._failed(exc)
            return self._fallback.try_take(channel, interval)
        if self._degraded:
            with self._lock:
                if self._degraded:
                    self._degraded = False
                    log.info("Redis answers again: Slack posts are paced across workers")
        return wait

    def close(self) -> None:
        """Close the Redis connections of this pacer."""
        self._client.close()

    def _take(self, key: str, interval: float) -> float:
        ms = max(1, math.ceil(interval * 1000))
        pipe = self._client.pipeline(transaction=True)
        pipe.set(key, b"1", nx=True, px=ms)
        pipe.pttl(key)
        taken, ttl = pipe.execute()
        if taken:
            return 0.0
        if ttl > 0:
            return ttl / 1000
        if ttl == -1:  # a key without expiry (set by hand?) would block the channel forever
            self._client.pexpire(key, ms)
        return _SHORT_WAIT

    def _failed(self, exc: redis.RedisError) -> None:
        with self._lock:
            self._fallback_until = time.monotonic() + self._fallback_period
            first = not self._degraded
            self._degraded = True
        if first:
            log.warning("Redis failed for Slack pacing (%s: %s): pacing per process for "
                        "%.0f s at a time until it answers", type(exc).__name__, exc,
                        self._fallback_period)
        else:
            log.debug("Redis still fails for Slack pacing: %s", exc)


def pacing_client(url: str) -> redis.Redis:
    """A Redis client for pacing: gives up after REDIS_TIMEOUT seconds and never retries."""
    return redis_client(url, connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
                        retries=0, health_check_interval=30)


_pacers_lock = threading.Lock()
_pacers: dict[str, RedisChannelPacer] = {}


def pacer_for(redis_url: str | None) -> Pacer:
    """The pacer of this process: shared through Redis when `redis_url` is set (one client
    per URL), else the in-process PACER."""
    if not redis_url:
        return PACER
    with _pacers_lock:
        pacer = _pacers.get(redis_url)
        if pacer is None:
            pacer = _pacers[redis_url] = RedisChannelPacer(pacing_client(redis_url))
        return pacer


def reset_pacers() -> None:
    """Close and forget the Redis pacers of this process (tests)."""
    with _pacers_lock:
        pacers = list(_pacers.values())
        _pacers.clear()
    for pacer in pacers:
        pacer.close()
