"""`python guard.py PROGRAM [ARGS...]`: run PROGRAM so that it dies with its worker.

ansible-runner starts ansible-playbook in a session of its own; if the worker is killed
(SIGKILL, out of memory), ansible-playbook and its forks would go on running — while the
reaper declares the job failed and the next job may start on the same server. This guard
sits between them: it asks Linux to signal it when its parent (the worker thread that
started it) dies (PR_SET_PDEATHSIG), and then kills its whole process group: the program,
the program's forks and itself. ansible-runner's own cancel and timeout still kill the
group the usual way. Elsewhere than Linux the guard simply runs PROGRAM.

Run as a script (not `-m`), with the standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


_child: subprocess.Popen[bytes] | None = None


def _kill_group(_signum: int = 0, _frame: object = None) -> None:
    # ansible-playbook may move itself into a process group of its own (it does when it
    # finds a terminal, as under ansible-runner's pty): kill that group too, then ours.
    if _child is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(_child.pid), signal.SIGKILL)
    os.killpg(0, signal.SIGKILL)


def _die_with_parent() -> None:
    parent = os.getppid()
    signal.signal(signal.SIGUSR1, _kill_group)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        _kill_group()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: guard.py PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    global _child
    _die_with_parent()
    _child = child = subprocess.Popen(argv)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
