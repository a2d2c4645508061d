"""workers.container: how this machine contains runs, decided once at worker start — and a
clear warning, with the sweep as fallback, where the kernel refuses PID namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workers.container import container_kind

ROOT = Path(__file__).resolve().parents[2]
DETECT = ("import logging; logging.basicConfig(level=logging.INFO); "
          "from workers.container import container_kind; print(container_kind())")


@pytest.mark.skipif(os.geteuid() != 0, reason="CI's workers run as root")
def test_a_root_worker_contains_each_run_in_a_pid_namespace():
    assert container_kind() == "pidns"


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
def test_where_the_kernel_refuses_namespaces_the_worker_falls_back_and_says_so():
    # given a kernel that refuses every new PID and user namespace (limits of 0, set
    # inside a user namespace of the test's own, so the machine's stay as they are)
    limits = ("echo 0 > /proc/sys/user/max_pid_namespaces && "
              "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"")

    # when a worker decides how to contain its runs
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", limits, sys.executable, "-c",
         DETECT], cwd=ROOT, capture_output=True, text=True, timeout=60)

    # then it falls back to the sweep, with one warning naming why
    assert done.stdout.strip() == "none", done.stderr
    [warning] = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert "the kernel refuses PID namespaces here" in warning
    assert "No space left on device" in warning
    assert "can miss a process forked" in warning
