"""Where a run's processes live, and how the worker ends them: its side of workers/guard.py.

`container_kind()` decides once per process how runs are held, and logs it once:

- `pidns` (the worker is root): each run in a PID namespace of its own;
- `userns` (not root): the same, inside a user namespace that maps only the worker's uid
  and gid (no privilege gained; a local `become` through sudo does not work there);
- `none`: the kernel refuses both (a container without the capability, user namespaces
  turned off). Runs are then ended by the sweep of before — the guard stops and kills every
  process below it, the worker kills what carries the run's environment mark — which can
  miss a process forked at that very moment. The worker says so at start, as a warning.

`RunContainer` is one run's: the guard's options, the pidfd of the run's first process (its
*init*) as soon as the guard has started it (`watch()`, called from the run's thread), and
`end()`: SIGKILL the init and wait until the kernel reports it dead — which it does only
once every other process of the namespace is gone. Guarantee: after `end()` returns True,
nothing the run started is running, whatever it forked or however it left its group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Literal

from workers.guard import kill_marked

log = logging.getLogger(__name__)

GUARD = Path(__file__).with_name("guard.py")
ContainerKind = Literal["pidns", "userns", "none"]
END_TIMEOUT = 10.0  # a process in uninterruptible sleep (D state) can delay its death


@cache
def container_kind() -> ContainerKind:
    """How this process's runs are contained (probed once, logged once)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return _fallback("not Linux 5.3 or later")
    candidates: tuple[ContainerKind, ...] = (("pidns", "userns") if os.geteuid() == 0
                                             else ("userns",))
    refusals = []
    for kind in candidates:
        refusal = _probe(kind)
        if refusal is None:
            log.info("runs are contained: each run in a PID namespace of its own%s; ending "
                     "a run ends every process it started",
                     "" if kind == "pidns" else " (inside a user namespace: not root)")
            return kind
        refusals.append(f"{kind}: {refusal}")
    return _fallback("; ".join(refusals))


def _fallback(why: str) -> ContainerKind:
    log.warning("the kernel refuses PID namespaces here (%s): runs are ended by the /proc "
                "sweep instead, which can miss a process forked at the moment a run is "
                "cancelled, times out or loses its worker", why)
    return "none"


def _probe(kind: ContainerKind) -> str | None:
    try:
        done = subprocess.run([sys.executable, "-I", str(GUARD), "--probe", kind],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


class RunContainer:
    """One run's container. `state_dir`: the guard's (lease, init.pid, fenced); `mark`: the
    environment variable every process of the run carries (the sweep's, `none` only)."""

    def __init__(self, state_dir: Path, kind: ContainerKind, mark: tuple[str, str]) -> None:
        self.state_dir = state_dir
        self.kind = kind
        self.mark = mark
        self._pidfd: int | None = None
        self._gone = False  # the init was already dead when we looked for it

    def guard_options(self) -> list[str]:
        return ["--container", self.kind, "--state", str(self.state_dir)]

    def watch(self) -> None:
        """Take hold of the run's init once the guard has written its pid.

        Once the init has died and been reaped its pid may name another process, so the
        pidfd is kept only if the process carries this run's mark: otherwise (a stranger, or
        our init as a zombie, whose environment reads empty) the init has ended, and with
        it everything of the run.
        """
        if self._pidfd is not None or self._gone or self.kind == "none":
            return
        try:
            pid = int((self.state_dir / "init.pid").read_text())
        except (OSError, ValueError):
            return
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._gone = True
            return
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            environ = []
        if "=".join(self.mark).encode() in environ:
            self._pidfd = pidfd
        else:
            os.close(pidfd)
            self._gone = True

    def end(self, *, stopped: bool) -> bool:
        """End whatever is left of the run; True once nothing of it runs.

        stopped: the run was cancelled, timed out or hit an error (without a container,
        only then is the sweep done: after a normal end a playbook may leave a daemon).
        """
        if self.kind == "none":
            if stopped:
                left = kill_marked(*self.mark)
                if left:
                    log.info("ended %d process(es) left of the stopped run", len(left))
            return True
        self.watch()
        if self._pidfd is None:
            return True  # the guard never started the init: nothing of the run ran
        pidfd, self._pidfd = self._pidfd, None
        try:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            ready, _, _ = select.select([pidfd], [], [], END_TIMEOUT)
        finally:
            os.close(pidfd)
        self._gone = True
        if not ready:
            log.error("the run in %s did not end within %.0f s of its SIGKILL (a process in "
                      "uninterruptible sleep?)", self.state_dir.parent, END_TIMEOUT)
        return bool(ready)

    def fenced(self) -> str | None:
        """The guard's note when it ended the run for an expired lease, else None."""
        try:
            return (self.state_dir / "fenced").read_text(encoding="utf-8").strip()
        except OSError:
            return None
