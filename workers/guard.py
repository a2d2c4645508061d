"""`python guard.py PROGRAM [ARGS...]`: run PROGRAM so that it dies with its worker.

ansible-runner starts ansible-playbook in a session of its own; if the worker is killed
(SIGKILL, out of memory), ansible-playbook and its forks would go on running — while the
reaper declares the job failed and the next job may start on the same server. This guard
sits between them: it asks Linux to signal it when its parent (the worker thread that
started it) dies (PR_SET_PDEATHSIG), and then kills every process below it — the program,
its forks and what they started — and its own process group. Killing the group alone is
not enough: ansible-playbook's task forks call setsid() to leave it, and one of them running
a long task would outlive the worker. ansible-runner's own cancel and timeout still kill
the group the usual way. Elsewhere than Linux the guard simply runs PROGRAM.

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


def _kill_group(_signum: int = 0, _frame: object = None) -> None:
    _kill_descendants()
    if os.getpgid(0) == os.getpid():  # ansible-runner made us lead a group: end all of it
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # never a group we do not lead (our starter's)


def _kill_descendants() -> None:
    """SIGKILL every process below this one, whatever its group or session.

    They are stopped first, until no new one appears (a stopped process cannot fork, and a
    killed parent's children would be reparented out of reach), then all killed at once.
    """
    stopped: set[int] = set()
    for _ in range(50):
        found = _descendants(os.getpid()) - stopped
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= found
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _descendants(root: int) -> set[int]:
    """The processes below `root`, from the parent ids in /proc (empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_marked(name: str, value: str) -> list[int]:
    """SIGKILL every process whose environment has `name=value` (Linux; [] elsewhere).

    The worker marks each run's environment, which every process of the run inherits, so
    that after a cancel or a timeout it can end what ansible-runner's kill missed: task
    forks that left the process group with setsid() and the commands they run.
    """
    mark = f"{name}={value}".encode()
    killed = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return killed
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if mark not in environ.read().split(b"\0"):
                    continue
            os.kill(int(entry), signal.SIGKILL)
            killed.append(int(entry))
        except (OSError, ValueError):
            continue
    return killed


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
    _die_with_parent()
    child = subprocess.Popen(argv)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
