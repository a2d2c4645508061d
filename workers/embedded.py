"""The embedded default: broker, workers and housekeeping inside the current process.

With no REDIS_URL, `playbot console` and single-process installs call
`start_embedded(config)`: an in-process Dramatiq broker, `threads` worker threads, and a
housekeeping thread doing the clock's work (reaper, requeue, approval expiry, retention).
Jobs enqueued through `handle.queue` (a `DramatiqJobQueue`) run in this process.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq

from workers import actors, housekeeping, notifier
from workers.broker import setup_broker
from workers.config import WorkerConfig, configure
from workers.execute import begin_shutdown, reset_shutdown
from workers.main import boot, housekeeping_pass, prepare_runs
from workers.queue import DramatiqJobQueue

log = logging.getLogger(__name__)


class EmbeddedWorkers:
    """Handle on the in-process workers: `.queue` to enqueue, `.stop()` to end them."""

    def __init__(self, config: WorkerConfig, threads: int) -> None:
        self.config = config
        self.broker = setup_broker(None)
        actors.declare(self.broker)
        self.queue = DramatiqJobQueue(None)
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=100)
        self._stop = threading.Event()
        self._clock = threading.Thread(target=self._housekeeping, name="playbot-housekeeping",
                                       daemon=True)

    def start(self) -> EmbeddedWorkers:
        boot(self.broker)
        self.worker.start()
        self._clock.start()
        return self

    def join(self, timeout: float = 60.0) -> bool:
        """Wait until every enqueued job has been processed (tests, scripts)."""
        deadline = time.monotonic() + timeout
        for queue_name in (actors.JOBS_QUEUE,):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                self.broker.join(queue_name, timeout=int(remaining * 1000), fail_fast=False)
            except dramatiq.errors.QueueJoinTimeout:
                return False
        return notifier.drain(max(0.1, deadline - time.monotonic()))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop housekeeping and the worker threads; running playbooks are stopped after
        `shutdown_grace` like in `playbot worker`."""
        self._stop.set()
        begin_shutdown(self.config.shutdown_grace)
        try:
            self.worker.stop(timeout=int(timeout * 1000))
            self._clock.join(5)
            notifier.drain(5)
        finally:
            reset_shutdown()  # the process lives on (console, tests): a later start is fresh

    def _housekeeping(self) -> None:
        def send(job_id: str) -> str:
            return self.queue.enqueue(job_id)

        last_retention = 0.0
        while not self._stop.wait(self.config.housekeeping_interval):
            housekeeping_pass(self.config, send)
            if time.monotonic() - last_retention >= self.config.retention_interval:
                last_retention = time.monotonic()
                try:
                    housekeeping.archive_logs(self.config)
                except Exception:  # keep the loop alive; the traceback is logged
                    log.exception("retention pass failed")


def start_embedded(config: WorkerConfig, *, threads: int = 2) -> EmbeddedWorkers:
    """Configure and start in-process workers for `config`; return their handle."""
    configure(config)
    reset_shutdown()
    prepare_runs(config)
    return EmbeddedWorkers(config, threads).start()
