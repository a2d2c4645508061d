"""`python -I guard.py [OPTIONS] -- PROGRAM [ARGS...]`: run PROGRAM as one run that can be
ended at once, and that ends when its worker dies or stops renewing its lease.

ansible-runner starts this guard (in a pseudo-terminal session of its own) instead of
ansible-playbook. The guard:

- **contains the run** (`--container pidns` or `userns`): it enters a new PID namespace (as
  root; else inside a new user namespace that maps only the worker's own uid and gid) and
  forks the namespace's first process, the run's *init*, which starts PROGRAM and reaps
  what it orphans. When that init dies, for whatever reason, the kernel kills every process
  of the namespace — task forks that left the process group with setsid(), the commands
  they were just forking — and the init is reported dead only once all of them are gone.
  The init starts PROGRAM only after the guard has written its pid (`STATE/init.pid`), so
  the worker can always hold it (a pidfd) and wait for the whole run to end. When PROGRAM
  exits, the init exits with its code and the rest of the run goes with it: nothing of a
  run outlives it (a daemon started by a local task too: use the service manager);
- **dies with its worker**: Linux SIGKILLs the guard when the worker thread that started
  it dies (PR_SET_PDEATHSIG), and the init when the guard dies;
- **fences a stalled worker**: the worker renews a lease (`STATE/lease`: a deadline on
  CLOCK_MONOTONIC, which all processes of a machine share) after each heartbeat it
  writes. Past the deadline — worker stopped (SIGSTOP, a long pause) or its database lost —
  the guard writes `STATE/fenced` and ends the run, before the reaper (whose grace is longer
  than the lease) can free the run's servers for the next job. A lease already expired
  when the guard starts means the run never starts;
- `--container none` (the kernel refuses namespaces): PROGRAM runs as the guard's child,
  and ending the run is the sweep of before — stop every process below the guard, then kill
  them and the guard's process group — which can miss a process forked at that moment.

`python -I guard.py --probe pidns|userns` exits 0 if this machine lets the worker create
that container (the worker asks once at start).

Run as a script (not `-m`), with the standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CONTAINERS = ("pidns", "userns", "none")
LEASE_CHECK_SECONDS = 0.25  # how late past its lease a stalled worker's run may be ended
FENCED_EXIT = 125  # the guard's exit code when it ended the run for an expired lease


# the lease -------------------------------------------------------------------------------


def write_lease(path: str, deadline: float) -> None:
    """Renew the lease at `path` until `deadline` (time.monotonic() seconds)."""
    write_atomically(path, repr(deadline))


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old or the new text, never half."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(text)
    os.replace(temporary, path)


def read_lease(path: str) -> float:
    """The deadline at `path`; an unreadable or missing lease has expired (0.0)."""
    try:
        with open(path, encoding="ascii") as handle:
            return float(handle.read())
    except (OSError, ValueError):
        return 0.0


# the container --------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _set_parent_death_signal(sig: int) -> None:
    if _libc().prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


def enter_namespace(container: str) -> None:
    """Make this process's next child the first process of a new PID namespace.

    userns: inside a new user namespace mapping only our own uid and gid, so the run keeps
    the worker's identity and gains no privilege. Raises OSError when the kernel refuses.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWPID | (CLONE_NEWUSER if container == "userns" else 0)
    if _libc().unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare({container}): {os.strerror(errno)}")
    if container == "userns":
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)


def _run_init(argv: list[str], go: int) -> None:
    """The namespace's first process: start PROGRAM once told to, reap, exit with its code."""
    _set_parent_death_signal(signal.SIGKILL)  # the guard died: end the whole namespace
    if os.read(go, 1) != b"1":  # the guard died, or fenced, before the start
        os._exit(FENCED_EXIT)
    os.close(go)
    try:
        program = subprocess.Popen(argv)
    except OSError as exc:
        print(f"[ERROR]: Playbot's guard could not start {argv[0]}: {exc}", flush=True)
        os._exit(127)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)  # also the orphans the namespace hands to us
        except ChildProcessError:
            os._exit(1)
        if pid == program.pid:
            os._exit(_exit_code(status))


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


# the guard ------------------------------------------------------------------------------


class Guard:
    """The guard's side: start the run, watch it and the lease, end it when due."""

    def __init__(self, argv: list[str], container: str, state: str | None) -> None:
        self.argv = argv
        self.container = container
        self.state = state
        self.child: int | None = None
        self._program: subprocess.Popen[bytes] | None = None

    def _path(self, name: str) -> str | None:
        return None if self.state is None else os.path.join(self.state, name)

    def lease_expired(self) -> bool:
        lease = self._path("lease")
        return lease is not None and time.monotonic() > read_lease(lease)

    def run(self) -> int:
        if self.container == "none":
            signal.signal(signal.SIGUSR1, lambda *_: self._die())
            self._arm(signal.SIGUSR1)
        else:
            self._arm(signal.SIGKILL)  # the init follows: the kernel ends the namespace
        if self.lease_expired():
            return self._fenced(started=False)
        if self.container == "none":
            self._program = subprocess.Popen(self.argv)  # kept: its __del__ would reap it
            self.child = self._program.pid
        else:
            try:
                self._start_init()
            except OSError as exc:  # probed at worker start: a kernel limit reached since
                print(f"[ERROR]: Playbot's guard could not contain the run: {exc}", flush=True)
                return 1
        return self._watch()

    def _arm(self, sig: int) -> None:
        parent = os.getppid()
        try:
            _set_parent_death_signal(sig)
        except (OSError, AttributeError):  # not Linux: no parent-death signal
            return
        if os.getppid() != parent:  # the worker died before prctl took effect
            self._die()

    def _start_init(self) -> None:
        enter_namespace(self.container)
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            try:
                _run_init(self.argv, go_read)
            finally:
                os._exit(1)
        os.close(go_read)
        self.child = pid
        pid_file = self._path("init.pid")
        if pid_file is not None:
            write_atomically(pid_file, str(pid))
        if self.lease_expired():
            os.close(go_write)  # the init exits without starting PROGRAM
        else:
            os.write(go_write, b"1")
            os.close(go_write)

    def _watch(self) -> int:
        assert self.child is not None
        pidfd = os.pidfd_open(self.child)
        while True:
            ready, _, _ = select.select([pidfd], [], [], LEASE_CHECK_SECONDS)
            if ready:
                _, status = os.waitpid(self.child, 0)
                return _exit_code(status)
            if self.lease_expired():
                return self._fenced(started=True)

    def _fenced(self, *, started: bool) -> int:
        what = "stopped it" if started else "did not start it"
        note = (f"[ERROR]: Playbot: the worker renewed no lease of this run in time (stopped, "
                f"stalled or cut off from its database); its guard {what} before the reaper "
                f"could free the servers.")
        fenced = self._path("fenced")
        if fenced is not None:
            with open(fenced, "w", encoding="utf-8") as handle:
                handle.write(note)
        print(note, flush=True)
        self._end()
        if self.child is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.child, 0)
        return FENCED_EXIT

    def _end(self) -> None:
        if self.child is None:
            return
        if self.container != "none":
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
            return
        _kill_descendants()

    def _die(self) -> None:
        """The worker died (sweep mode): end everything below us and our group, then us."""
        _kill_descendants()
        if os.getpgid(0) == os.getpid():  # ansible-runner made us lead a group: end all of it
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)  # never a group we do not lead (our starter's)


# the sweep (--container none) -----------------------------------------------------------


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

    Without a container, the worker marks each run's environment, which every process of
    the run inherits, so that after a cancel or a timeout it can end what ansible-runner's
    kill missed: task forks that left the process group with setsid() and their commands.
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


# entry ----------------------------------------------------------------------------------


def probe(container: str) -> int:
    """0 if a run can be contained so here: a namespace made, its first process run."""
    try:
        enter_namespace(container)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if os.getpid() == 1 else 3)
        _, status = os.waitpid(pid, 0)
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    usage = "usage: guard.py [--container pidns|userns|none] [--state DIR] -- PROGRAM [ARGS...]"
    if len(argv) == 2 and argv[0] == "--probe" and argv[1] in CONTAINERS[:2]:
        return probe(argv[1])
    container, state = "none", None
    if argv and not argv[0].startswith("--"):
        argv = ["--", *argv]  # `guard.py PROGRAM ...`: no options
    while argv and argv[0] != "--":
        if len(argv) < 2 or argv[0] not in ("--container", "--state"):
            print(usage, file=sys.stderr)
            return 2
        if argv[0] == "--container":
            container = argv[1]
        else:
            state = argv[1]
        argv = argv[2:]
    program = argv[1:]
    if not program or container not in CONTAINERS:
        print(usage, file=sys.stderr)
        return 2
    return Guard(program, container, state).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
