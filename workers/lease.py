"""The lease: a worker's promise to its running playbook's guard that it is still alive.

A run's `Lease` holds a deadline on CLOCK_MONOTONIC (shared by every process of a machine).
The worker renews it after each heartbeat it writes to the database, until `sent + seconds`,
`sent` being the moment the heartbeat was sent — so the deadline never runs later than the
heartbeat the reaper will judge by. The run's guard (`workers/guard.py`) reads it from the
run's state directory and ends the run once it has passed: a worker that is stopped
(SIGSTOP), stalled or cut off from its database stops renewing, and its playbook is stopped
before the reaper, whose grace is longer than the lease (settings check it), frees its
servers for the next job.

`expire()` ends the lease for good (the worker is stopping the run): later renewals are
ignored, so a heartbeat cannot revive a run being ended.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from workers.guard import write_lease


class Lease:
    """One run's lease. `seconds=None`: it never expires (runs without a heartbeat: tools,
    benchmarks, tests of the runner)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._deadline = math.inf if seconds is None else time.monotonic() + seconds
        self._path: Path | None = None
        self._expired = False
        self._lock = threading.Lock()

    def renew(self, sent: float) -> None:
        """Extend the lease to `sent + seconds` (`sent`: time.monotonic() when the heartbeat
        that proves the worker alive was sent)."""
        if self.seconds is None:
            return
        with self._lock:
            if self._expired:
                return
            self._deadline = sent + self.seconds
            self._write()

    def attach(self, path: Path) -> None:
        """Keep the lease in `path` from now on (the guard of the run reads it there)."""
        with self._lock:
            self._path = path
            self._write()

    def expire(self) -> None:
        """End the lease now and for good: the guard ends the run at its next check."""
        with self._lock:
            self._expired = True
            self._deadline = 0.0
            self._write()

    def detach(self) -> None:
        """Stop keeping the lease in its file (the run is over, its directory going)."""
        with self._lock:
            self._path = None

    def _write(self) -> None:
        if self._path is not None:
            try:
                write_lease(str(self._path), self._deadline)
            except FileNotFoundError:  # the run is over and its directory removed
                self._path = None
