"""Runs' private directories under the runtime dir, and the sweep of those left behind.

Each run gets `PLAYBOT_RUNTIME_DIR/<run or job uuid>/` (mode 0700): its inventory, its extra
vars — secret values included — and its guard's state. `RunDir.create` makes it and holds an
exclusive `flock` on it for as long as the run lives; `remove()` deletes it afterwards.

A worker killed mid-run (SIGKILL, out of memory, the machine's power) cannot remove its
directory, but the kernel drops its lock. `sweep(runtime_dir)`, called when a worker starts,
removes every run directory whose lock it can take: no live run owns it, even when several
workers (or a console) share the runtime dir. Only directories carrying the run-directory
mark are touched, so a runtime dir pointed at a shared place loses nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

MARK = ".playbot-run"  # written in every run directory once its lock is held


class RunDirBusy(RuntimeError):
    """Another live process holds the run directory of this name."""


class RunDir:
    """A run's private directory, locked by this process until `remove()`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(cls, runtime_dir: Path, name: str) -> RunDir:
        """Make and lock `runtime_dir/name` (a leftover of that name no one holds is removed
        first). Raises RunDirBusy when a live process holds it."""
        runtime_dir.mkdir(parents=True, exist_ok=True)
        path = runtime_dir / name
        for _ in range(20):
            if os.path.lexists(path) and not _remove_if_free(path):
                raise RunDirBusy(f"run directory {path} is in use by a live run")
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            fd = _lock(path)
            if fd is None:  # a sweeper holds it at this instant, or another creator won
                time.sleep(0.05)
                continue
            if _same(fd, path):
                os.chmod(path, 0o700)
                (path / MARK).touch(mode=0o600)
                return cls(path, fd)
            os.close(fd)  # swept between mkdir and lock: make it again
        raise RunDirBusy(f"could not take run directory {path}")

    def remove(self) -> None:
        """Delete the directory (it holds secret values) and release it."""
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)


def sweep(runtime_dir: Path) -> list[str]:
    """Remove the run directories no live run holds; return their names."""
    try:
        entries = sorted(runtime_dir.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink() and (entry / MARK).exists() \
                and _remove_if_free(entry):
            removed.append(entry.name)
    if removed:
        log.info("removed %d run director%s left by workers that died: %s", len(removed),
                 "y" if len(removed) == 1 else "ies", ", ".join(removed))
    return removed


def _remove_if_free(path: Path) -> bool:
    fd = _lock(path)
    if fd is None:
        return False
    try:
        if _same(fd, path):
            shutil.rmtree(path, ignore_errors=True)
        return not os.path.lexists(path)
    finally:
        os.close(fd)


def _lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _same(fd: int, path: Path) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
