"""The thread pool that runs the slow half of every Slack request, after the ack.

Bolt runs lazy listeners on the app's `listener_executor`; this is that executor, with a count
of the work in flight so that shutdown can drain it and tests can wait until the app has
finished reacting to a request (`wait_idle`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class BackgroundExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor that knows how much submitted work has not finished yet."""

    # Few threads on purpose: the after-ack work is CPU-heavy Python (ORM, JSON, Block Kit)
    # and every extra runnable thread makes request threads wait longer for the GIL. With
    # 16 threads, 20 clients launching at full speed saw p99 acks near 1 s; with 2, under
    # 200 ms, and launches/s went up (bench: `python -m bench ack`).
    def __init__(self, max_workers: int = 2) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="playbot-bg")
        self._in_flight = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._in_flight += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any] | None) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    @property
    def in_flight(self) -> int:
        with self._idle:
            return self._in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no submitted work is left (True) or `timeout` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)
