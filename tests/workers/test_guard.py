"""The guard between a worker and ansible-playbook: when the worker dies, everything the
playbook started dies too — even a fork that left the process group with setsid(), as
ansible-playbook's task forks do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workers.runner import GUARD

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parent-death signal is Linux-only")

# The "playbook": forks a child that leaves for a session of its own (like an ansible task
# fork) and starts a long command there; writes both pids, then waits.
PLAYBOOK = textwrap.dedent("""
    import os, subprocess, sys, time
    pid = os.fork()
    if pid == 0:
        os.setsid()
        task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(sys.argv[1] + ".tmp", "w") as out:
            out.write(f"{os.getppid()} {os.getpid()} {task.pid}")
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        task.wait()
        os._exit(0)
    os.waitpid(pid, 0)
""")

# The "worker": starts the guard with the playbook in a session of its own (as
# ansible-runner's pexpect does), then waits to be killed.
WORKER = textwrap.dedent("""
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-I", sys.argv[1], sys.executable, "-c", sys.argv[2],
                      sys.argv[3]], start_new_session=sys.argv[4] == "own-session")
    time.sleep(120)
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("session", ["own-session", "starters-group"])
def test_killing_the_worker_kills_the_playbook_and_a_fork_that_left_its_group(tmp_path,
                                                                              session):
    # (in the starter's group, the guard must not kill the group: that is the test runner's)
    pids_file = tmp_path / "pids"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(GUARD), PLAYBOOK,
                               str(pids_file), session])
    try:
        deadline = time.monotonic() + 20
        while not pids_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        playbook, fork, task = (int(pid) for pid in pids_file.read_text().split())
        assert os.getsid(fork) != os.getsid(playbook)  # the fork left, as ansible's do

        worker.send_signal(signal.SIGKILL)  # the OOM killer, kill -9
        worker.wait(10)

        deadline = time.monotonic() + 10
        while any(map(alive, (playbook, fork, task))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(alive, (playbook, fork, task)))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
