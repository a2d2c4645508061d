"""The worker and clock processes: `playbot worker` and `playbot clock` call these.

`run_worker(config, threads=N)` runs a Dramatiq worker in this process on the Redis broker
(or the in-process one when REDIS_URL is unset — then only jobs enqueued by this very process
run: use the embedded runner instead). Shutdown on SIGTERM/SIGINT is graceful:

1. no new messages are taken; prefetched ones go back to Redis;
2. running playbooks may finish for `shutdown_grace` seconds (25 s by default, inside the
   30 s most process managers wait before SIGKILL);
3. then they are stopped (ansible-playbook killed) and their jobs end `failed` with
   "interrupted: the worker shut down…" — never re-run, since they may have done part of
   their work; the Slack notifiers get a few seconds to post the endings.

`run_clock(config)` is the one clock process: every `housekeeping_interval` seconds it reaps
jobs whose worker died, requeues pending jobs whose message was lost, expires approval
requests; every `retention_interval` it archives old logs. Running two clocks is safe (every
step is a conditional UPDATE only one clock wins, and retention runs under a lease in the
database) but pointless. All the times they compare are the database's (`db.clock`).

At start a worker says how its runs are contained (`workers.container`: a warning when the
kernel refuses PID namespaces) and removes the run directories that workers killed mid-run
left behind (`workers.run_dirs.sweep`: their secrets included; a live run's are kept).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dramatiq

from workers import actors, housekeeping, notifications, notifier, run_dirs, schedules
from workers.broker import setup_broker
from workers.config import WorkerConfig, configure
from workers.container import container_kind
from workers.execute import begin_shutdown, reset_shutdown
from workers.middleware import LogContextFilter, dispose_engines

log = logging.getLogger(__name__)

DEFAULT_THREADS = 2
# An idle Dramatiq consumer polls Redis with a growing back-off capped at this many ms: at
# Dramatiq's 1 s default a job waited a good part of a second in the queue, at this cap a
# small part of that (bench/README.md, end_to_end), for a few cheap Redis calls a second
# per idle worker.
IDLE_POLL_MS = 100


def _install_log_context() -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, LogContextFilter) for f in handler.filters):
            handler.addFilter(LogContextFilter())


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


_booted: set[int] = set()


def boot(broker: dramatiq.Broker) -> None:
    """Tell the broker's middleware the process has booted, once (as Dramatiq's CLI does):
    TimeLimit starts its watchdog thread here."""
    if id(broker) not in _booted:
        _booted.add(id(broker))
        broker.emit_after("process_boot")


def run_worker(config: WorkerConfig, *, threads: int = DEFAULT_THREADS,
               stop: threading.Event | None = None, housekeeping_too: bool = False) -> int:
    """Consume jobs until SIGTERM/SIGINT (or `stop` is set); return the exit code.

    threads: playbooks run at the same time in this process.
    housekeeping_too: also run the clock's work in this process (small installs without a
        clock process).
    """
    configure(config)
    reset_shutdown()
    _install_log_context()
    stop = stop or threading.Event()
    _on_signals(stop)
    prepare_runs(config)
    broker = setup_broker(config.redis_url)
    actors.declare(broker)
    boot(broker)
    # Only the workers' own queues: others (the Slack app's after-ack queue) have threads
    # of their own, which playbook runs must never hold.
    worker = dramatiq.Worker(broker, queues=actors.queue_names(), worker_threads=threads,
                             worker_timeout=IDLE_POLL_MS)
    # hold no more messages than threads: a busy worker leaves waiting jobs to idle ones
    worker.queue_prefetch = threads
    worker.start()
    log.info("worker started: %d threads, broker %s", threads,
             "redis" if config.redis_url else "in-process")
    clock = None
    if housekeeping_too:
        clock = threading.Thread(target=run_clock, args=(config,),
                                 kwargs={"stop": stop, "install_signals": False},
                                 name="playbot-clock", daemon=True)
        clock.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        log.info("stopping: running playbooks get %.0f s to finish", config.shutdown_grace)
        begin_shutdown(config.shutdown_grace)
        worker.stop(timeout=int((config.shutdown_grace + 30) * 1000))
        notifier.drain(10)
        if clock is not None:
            clock.join(5)
        dispose_engines()
        reset_shutdown()
        log.info("worker stopped")
    return 0


def prepare_runs(config: WorkerConfig) -> None:
    """Before the first run: decide (and log) how runs are contained, and sweep the run
    directories that dead workers left behind."""
    container_kind()
    run_dirs.sweep(Path(config.runtime_dir))


def run_clock(config: WorkerConfig, *, stop: threading.Event | None = None,
              install_signals: bool = True) -> int:
    """Run the housekeeping loop until SIGTERM/SIGINT (or `stop`); return the exit code."""
    configure(config)
    stop = stop or threading.Event()
    if install_signals:
        _install_log_context()
        _on_signals(stop)
    broker = setup_broker(config.redis_url)

    def send(job_id: str) -> str:
        return actors.declare(broker)["run_job"].send(job_id).message_id

    log.info("clock started: every %.0f s", config.housekeeping_interval)
    last_retention: float | None = None  # not 0.0: monotonic time starts near 0 at boot
    while not stop.is_set():
        housekeeping_pass(config, send)
        if last_retention is None or time.monotonic() - last_retention >= config.retention_interval:
            last_retention = time.monotonic()
            _guarded("archive logs", lambda: housekeeping.archive_logs(config))
        stop.wait(config.housekeeping_interval)
    log.info("clock stopped")
    return 0


def housekeeping_pass(config: WorkerConfig, send: Callable[[str], str]) -> None:
    """One round of reap, requeue, approval expiry, due schedules (`workers.schedules`) and
    job-ending notifications (`workers.notifications`); a failing step does not stop the
    rest."""
    _guarded("reap", lambda: housekeeping.reap(config))
    _guarded("requeue", lambda: housekeeping.requeue(config, send=send))
    _guarded("expire approvals", lambda: housekeeping.expire_approvals(config, send=send))
    _guarded("fire schedules", lambda: schedules.fire_schedules(config, send=send))
    _guarded("notify endings", lambda: notifications.notify_endings(config))


def _guarded(what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception:  # the loop must survive a bad pass; the traceback is logged
        log.exception("housekeeping step %r failed; it runs again next pass", what)
