"""The slow half of each Slack request, run in processes of its own beside the web process.

Why: the ack is latency-bound (Slack gives up after 3 s, users feel anything over ~100 ms)
while the work after it — the launch's database writes, the job message, the Redis enqueue,
a `/jobs` query — is CPU-heavy Python. On threads of the web process that work holds the
GIL while the request threads wait to answer the next acks: under 20 busy clients the p99
ack was ~250 ms (bench/README.md). In processes of their own, at a lower CPU priority
(`nice`), it can no longer delay an ack.

How: Bolt hands every lazy listener to a `LazyListenerRunner`; ours sends the request (its
body, headers and the `playbot_*` entries of its context) to a pool of spawned
processes. Each builds the same app once at start and dispatches the request there as a
*lazy-only* request — the mechanism Bolt's AWS Lambda adapter uses to run a lazy listener
in another invocation — so only the named lazy function runs. The processes skip request
verification: their only input is this pipe, fed by the web process after it verified the
request. Counters the handlers report (`handlers.deps.Observer`) are recorded in the child
and replayed into the web process's Prometheus metrics when the work is done.

A child that dies (killed, out of memory) loses the work it had; it is logged, never re-run
(a launch half-done must not launch twice), and the pool is rebuilt for the next request.

Only `playbot web` / `playbot socket` on MariaDB + Redis use this (`after_ack_processes`):
the embedded default (SQLite, in-process broker) and tests that inject their own Slack
client or queue keep the work on the web process's threads (`bot.background`).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.lazy_listener import LazyListenerRunner
from slack_bolt.request import BoltRequest
from slack_bolt.util.utils import get_name_for_callable

from bot.background import InFlight

if TYPE_CHECKING:
    from bot.settings import Settings
    from handlers.deps import Observer

log = logging.getLogger(__name__)

LAZY_ONLY_HEADER = "x-slack-bolt-lazy-only"
LAZY_NAME_HEADER = "x-slack-bolt-lazy-function-name"
FORWARDED_CONTEXT_PREFIX = "playbot_"  # context the ack half leaves for the lazy half
DEFAULT_NICE = 10
ObserverEvent = tuple[str, tuple[Any, ...]]


def after_ack_processes(settings: Settings) -> int:
    """How many after-ack processes a `playbot web`/`socket` with these settings runs.

    0 (threads in the web process) without Redis — the in-process broker lives in the web
    process — or on SQLite, which the embedded default keeps to one process.
    """
    if not settings.uses_redis or settings.database_url.startswith("sqlite"):
        return 0
    return settings.playbot_after_ack_processes


class ProcessLazyRunner(LazyListenerRunner):
    """Bolt's lazy listener runner, sending each lazy function to the after-ack processes."""

    def __init__(self, pool: AfterAckProcesses) -> None:
        self.pool = pool
        self.logger = log

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        self.send(request.lazy_function_name or get_name_for_callable(function), request)

    def send(self, name: str, request: BoltRequest) -> None:
        """Hand lazy function `name` for `request` to the pool (what it needs is copied now)."""
        headers = {key: list(values) for key, values in request.headers.items()}
        headers[LAZY_ONLY_HEADER] = ["1"]
        headers[LAZY_NAME_HEADER] = [name]
        context = {key: value for key, value in request.context.items()
                   if key.startswith(FORWARDED_CONTEXT_PREFIX)}
        body = request.raw_body if request.mode == "http" else request.body
        self.pool.submit(name, body, headers, context, request.mode)


def run_lazy_listeners_in(app: App, pool: AfterAckProcesses) -> None:
    """Make `app` send every lazy listener to the after-ack processes.

    Before handing a request to a lazy runner, Bolt deep-copies it (so a thread can own it):
    40% of the web process's CPU per ack, for a copy the pipe makes anyway. So this app's
    listener runner hands the request over directly instead (`_start_lazy_function` is
    replaced on this instance; tests/bot/test_after_ack.py fails if Bolt changes under it).
    """
    runner = app.listener_runner
    lazy_runner = ProcessLazyRunner(pool)
    runner.lazy_listener_runner = lazy_runner

    def start_lazy_function(lazy_func: Callable[..., None], request: BoltRequest) -> None:
        lazy_runner.send(get_name_for_callable(lazy_func), request)

    runner._start_lazy_function = start_lazy_function  # type: ignore[method-assign]  # noqa: SLF001


@dataclass(frozen=True)
class _Work:
    name: str  # the lazy function's, for the logs
    args: tuple[Any, ...]  # of `_run_lazy`


class AfterAckProcesses:
    """A pool of spawned processes, each running the Bolt app's lazy listeners.

    Request threads only drop the work in an in-memory inbox; one dispatcher thread hands it
    to the pool. (Submitting to a ProcessPoolExecutor writes to a pipe, releasing the GIL;
    done from 8 request threads behind a lock it turned into a convoy that held acks back.)
    """

    def __init__(self, settings: Settings, processes: int, observer: Observer, *,
                 nice: int = DEFAULT_NICE) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.settings = settings
        self.processes = processes
        self.observer = observer
        self.nice = nice
        self.in_flight = InFlight()
        self._pool = self._new_pool()
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="playbot-after-ack",
                                            daemon=True)
        self._dispatcher.start()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.processes, mp_context=get_context("spawn"),
                                   initializer=_start_child,
                                   initargs=(self.settings, self.nice, os.getpid()))

    def warm_up(self, timeout: float = 60.0) -> None:
        """Start every process now (they build the app: imports, `auth.test`) rather than
        on the first request; raise if they cannot."""
        pool = self._pool
        for future in [pool.submit(_ready) for _ in range(self.processes)]:
            future.result(timeout=timeout)

    def submit(self, name: str, body: Any, headers: dict[str, list[str]],
               context: dict[str, Any], mode: str) -> None:
        """Run lazy function `name` for this request in one of the processes (returns at once)."""
        self.in_flight.started()
        self._inbox.put(_Work(name, (body, headers, context, mode)))

    def _dispatch(self) -> None:
        while (work := self._inbox.get()) is not None:
            try:
                future = self._to_pool(work)
            except Exception:  # noqa: BLE001 - the pool cannot take work: log, count, go on
                log.exception("after-ack work %s could not be started", work.name)
                self.observer.error("after_ack_process")
                self.in_flight.finished()
                continue
            future.add_done_callback(partial(self._finished, work.name))

    def _to_pool(self, work: _Work) -> Future[list[ObserverEvent]]:
        try:
            return self._pool.submit(_run_lazy, *work.args)
        except BrokenProcessPool:
            log.error("an after-ack process died; starting a new pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_run_lazy, *work.args)

    def _finished(self, name: str, future: Future[list[ObserverEvent]]) -> None:
        try:
            if future.cancelled():
                log.warning("after-ack work %s was cancelled at shutdown", name)
                return
            error = future.exception()
            if error is not None:
                # The child logs what a handler raises; this is the process itself failing.
                log.error("after-ack work %s was lost: %s: %s", name, type(error).__name__,
                          error)
                self.observer.error("after_ack_process")
                return
            for method, args in future.result():
                getattr(self.observer, method)(*args)
        finally:
            self.in_flight.finished()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every submitted request's work is done (True) or `timeout` (False)."""
        return self.in_flight.wait_idle(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Let the work in flight finish (bounded), then stop the processes."""
        self.wait_idle(timeout)
        if self._dispatcher.is_alive():
            self._inbox.put(None)
            self._dispatcher.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)


# --- inside each after-ack process ---------------------------------------------------------


@dataclass
class RecordingObserver:
    """The handlers' observer inside a child: records calls for the web process to replay."""

    events: list[ObserverEvent] = field(default_factory=list)

    def job_launched(self, outcome: str, count: int = 1) -> None:
        self.events.append(("job_launched", (outcome, count)))

    def error(self, where: str) -> None:
        self.events.append(("error", (where,)))

    def drain(self) -> list[ObserverEvent]:
        events, self.events = self.events, []
        return events


_CHILD: dict[str, Any] = {}


def _start_child(settings: Settings, nice: int, web_pid: int) -> None:
    """Process initializer: lower the priority, build the app once, die with the web process."""
    from bot.runtime import build_runtime, freeze_startup_heap

    threading.Thread(target=_exit_with, args=(web_pid,), name="playbot-parent-watch",
                     daemon=True).start()

    # Ctrl-C reaches the whole process group: it is for the web process, which drains the
    # work and then stops us. SIGTERM keeps its default (the pool uses it to stop a broken
    # pool's processes; ignoring it left them, and the web process's exit, hanging forever).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if nice:
        os.nice(nice)
    observer = RecordingObserver()
    runtime = build_runtime(settings, observer=observer, verify_requests=False)
    _CHILD.update(app=runtime.app, observer=observer, runtime=runtime)
    freeze_startup_heap()


def _exit_with(web_pid: int, every: float = 1.0) -> None:
    """Exit once the web process is gone (killed with SIGKILL, say): the pool's own pipes
    would keep this process waiting for work forever, holding its database connections."""
    while os.getppid() == web_pid:
        time.sleep(every)
    log.warning("the web process %d is gone: this after-ack process exits", web_pid)
    os._exit(0)


def _ready() -> int:
    return os.getpid()


def _run_lazy(body: Any, headers: dict[str, list[str]], context: dict[str, Any],
              mode: str) -> list[ObserverEvent]:
    """Dispatch one lazy-only request to this process's app; the observer calls it made."""
    request = BoltRequest(body=body, headers=headers, context=context, mode=mode)
    _CHILD["app"].dispatch(request)
    observer: RecordingObserver = _CHILD["observer"]
    return observer.drain()
