"""The guard between a worker and ansible-playbook: when the worker dies, or stops renewing
its lease, everything the playbook started ends — even a fork that left the process group
with setsid(), as ansible-playbook's task forks do — in a PID namespace, a user namespace,
and (the fallback where the kernel refuses both) by the sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from workers.container import GUARD
from workers.guard import FENCED_EXIT, write_lease

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="namespaces and the parent-death signal are Linux-only")

# The "playbook": forks a child that leaves for a session of its own (like an ansible task
# fork) and starts a long command there; says it is ready, then waits.
PLAYBOOK = textwrap.dedent("""
    import os, subprocess, sys, time
    pid = os.fork()
    if pid == 0:
        os.setsid()
        task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(sys.argv[1], "w").close()
        task.wait()
        os._exit(0)
    os.waitpid(pid, 0)
""")

# The "worker": starts the guard with the playbook in a session of its own (as
# ansible-runner's pexpect does) or in its own group, then waits to be killed.
WORKER = textwrap.dedent("""
    import subprocess, sys, time
    guard, playbook, ready, session, *options = sys.argv[1:]
    subprocess.Popen([sys.executable, "-I", guard, *options, "--", sys.executable, "-c",
                      playbook, ready], start_new_session=session == "own-session")
    time.sleep(120)
""")


def marked(mark: str) -> list[int]:
    """Live processes whose environment carries `mark` (every process of the test's run)."""
    found = []
    needle = mark.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A guard state dir with a lease that lasts the test."""
    path = tmp_path / "guard"
    path.mkdir()
    write_lease(str(path / "lease"), time.monotonic() + 300)
    return path


@pytest.mark.parametrize("container", ["pidns", "userns", "none"])
@pytest.mark.parametrize("session", ["own-session", "starters-group"])
def test_killing_the_worker_ends_the_playbook_and_a_fork_that_left_its_group(
        tmp_path, state, container, session):
    # given a worker whose guarded playbook runs a task in a session of its own
    # (in the starter's group, the guard must not kill the group: that is the test runner's)
    mark = f"PLAYBOT_TEST_RUN={uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(GUARD), PLAYBOOK, str(ready), session,
         "--container", container, "--state", str(state)],
        env={**os.environ, mark.split("=")[0]: mark.split("=")[1]})
    try:
        assert wait_for(ready.exists, 20)
        assert len(marked(mark)) >= 4  # worker, guard, playbook, its fork, the task

        # when the worker is killed (the OOM killer, kill -9)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)

        # then nothing of its run is left
        assert wait_for(lambda: not marked(mark), 10), marked(mark)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize("container", ["pidns", "none"])
def test_a_lease_that_runs_out_ends_the_run_and_says_why(tmp_path, state, container):
    # given a guarded playbook whose worker stops renewing its lease 1 s from now
    mark = f"PLAYBOT_TEST_RUN={uuid.uuid4().hex}"
    ready = tmp_path / "ready"
    write_lease(str(state / "lease"), time.monotonic() + 1.0)
    t0 = time.monotonic()

    # when the lease runs out
    done = subprocess.run(
        [sys.executable, "-I", str(GUARD), "--container", container, "--state", str(state),
         "--", sys.executable, "-c", PLAYBOOK, str(ready)],
        env={**os.environ, mark.split("=")[0]: mark.split("=")[1]},
        capture_output=True, text=True, timeout=30)

    # then the guard has ended the run within a moment of the deadline, and says so
    assert ready.exists()
    assert done.returncode == FENCED_EXIT
    assert time.monotonic() - t0 < 5
    assert "renewed no lease" in done.stdout
    assert "renewed no lease" in (state / "fenced").read_text()
    assert wait_for(lambda: not marked(mark), 5), marked(mark)


def test_a_run_whose_lease_ran_out_before_it_started_never_starts(tmp_path, state):
    ready = tmp_path / "ready"
    write_lease(str(state / "lease"), time.monotonic() - 1)

    done = subprocess.run(
        [sys.executable, "-I", str(GUARD), "--container", "pidns", "--state", str(state),
         "--", sys.executable, "-c", PLAYBOOK, str(ready)],
        capture_output=True, text=True, timeout=30)

    assert done.returncode == FENCED_EXIT
    assert not ready.exists()


def test_the_run_gets_the_playbooks_exit_code_and_ends_with_it(tmp_path, state):
    # a normal end: the run's leftovers (a background sleep) end with it in a namespace
    mark = f"PLAYBOT_TEST_RUN={uuid.uuid4().hex}"

    done = subprocess.run(
        [sys.executable, "-I", str(GUARD), "--container", "pidns", "--state", str(state),
         "--", "sh", "-c", "setsid sleep 60 & exit 3"],
        env={**os.environ, mark.split("=")[0]: mark.split("=")[1]}, timeout=30)

    assert done.returncode == 3
    assert not marked(mark)


def test_the_guard_runs_on_the_standard_library_alone(state):
    # it is started as a script for every run: no site-packages, no Playbot imports
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(GUARD), "--container", "pidns", "--state", str(state),
         "--", "true"], capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
