"""Counting work in flight, and the web process's small thread pool.

`InFlight` counts work handed off and not finished yet, so that shutdown can drain it and
tests can wait until the app has finished reacting to a request (`wait_idle`).
`BackgroundExecutor` is the app's Bolt `listener_executor`: the work after each ack is a
broker message (`bot.after_ack`), so this pool only runs that work when the broker could
not take it (Redis unreachable at ack time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class InFlight:
    """A count of submitted work not finished yet, and a way to wait until it is zero."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def started(self) -> None:
        with self._idle:
            self._count += 1

    def finished(self, _future: Future[Any] | None = None) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    @property
    def count(self) -> int:
        with self._idle:
            return self._count

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is in flight (True) or `timeout` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout)


class BackgroundExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor that knows how much submitted work has not finished yet."""

    # Few threads on purpose: the after-ack work is CPU-heavy Python (ORM, JSON, Block Kit)
    # and every extra runnable thread makes request threads wait longer for the GIL: with
    # many, the slowest acks under load grew several-fold and fewer launches got done
    # (bench/README.md, the ack figure, has the measurements).
    def __init__(self, max_workers: int = 2) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="playbot-bg")
        self._work = InFlight()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self._work.started()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._work.finished()
            raise
        future.add_done_callback(self._work.finished)
        return future

    @property
    def in_flight(self) -> int:
        return self._work.count

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no submitted work is left (True) or `timeout` passes (False)."""
        return self._work.wait_idle(timeout)
