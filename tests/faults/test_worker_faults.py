"""A worker killed (SIGKILL) or stopped (SIGSTOP) mid-run: real `playbot worker` and
`playbot clock` processes on MariaDB + Redis, a real playbook over SSH to a real test host.

The playbook ticks on the host — each tick a task of its own writing the host's time to a
file in its login user's home — so the host itself tells when each job's playbook worked
on it. Each test ends with every acked launch run exactly once or failed with a clear
reason, nothing pending or running, and no two playbooks ever at work on the server at
once: the dead or stalled worker's playbook stops (with the worker, or by its guard when
its lease runs out) before the reaper frees the server, and the next job starts only after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC
from pathlib import Path

import pytest

from db.models import JobStatus
from tests.support.ssh_hosts import PYTHON, SshHost
from tests.workers.conftest import (  # noqa: F401  (pytest fixtures, used by name)
    World,
    fake_slack,
    maria_world,
    playbook_dir,
)
from workers.known_hosts import trust
from workers.queue import DramatiqJobQueue

pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.redis, pytest.mark.ssh]

ROOT = Path(__file__).resolve().parents[2]
PLAYBOT = str(Path(sys.executable).parent / "playbot")
HEARTBEAT, LEASE, GRACE = 1, 3, 5  # seconds; the clock passes every 5 s (its default)
TIMINGS = ("PLAYBOT_HEARTBEAT_SECONDS", "PLAYBOT_RUN_LEASE_SECONDS",
           "PLAYBOT_REAPER_GRACE_SECONDS")

TICKS = """\
- name: Tick on the host
  hosts: all
  gather_facts: false
  tasks:
    - name: Mark the start
      ansible.builtin.shell: "echo run >> ~/starts-{{ label }}"
    - name: Tick
      ansible.builtin.shell: "date +%s.%N >> ~/ticks-{{ label }}; sleep 0.2"
      loop: "{{ range(count | int) | list }}"
"""


class Playbot:
    """One `playbot ...` process of the test, its output kept for failure messages."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen([PLAYBOT, *args], env=env, cwd=ROOT,
                                        stdout=self._out, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def started(self) -> bool:
        """The worker has started (and swept the run directories it found then)."""
        return "worker started" in self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything it left behind
        self._out.close()


@pytest.fixture
def stack(maria_world: World, redis_server, ssh_hosts, tmp_path: Path):  # noqa: F811
    """`start(name, *args)` starts a playbot process on the test's database, Redis, fake
    Slack and pinned known_hosts; all are stopped at the end."""
    known_hosts = tmp_path / "known_hosts"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PLAYBOT_", "SLACK_")) and k not in ("DATABASE_URL",
                                                                  "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(ROOT), "DATABASE_URL": maria_world.url, "REDIS_URL": redis_server.url,
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API_URL": maria_world.slack.api_url,
        "PLAYBOT_JOBS_CHANNEL": "C_JOBS", "PLAYBOOK_DIR": str(maria_world.playbook_dir),
        "PLAYBOT_RUNTIME_DIR": str(tmp_path / "runs"),
        "PLAYBOT_ARCHIVE_DIR": str(tmp_path / "archive"),
        "PLAYBOT_KNOWN_HOSTS": str(known_hosts),
        "PLAYBOT_HEARTBEAT_SECONDS": str(HEARTBEAT), "PLAYBOT_RUN_LEASE_SECONDS": str(LEASE),
        "PLAYBOT_REAPER_GRACE_SECONDS": str(GRACE), "PLAYBOT_REDELIVERY_SECONDS": "5",
        "PLAYBOT_AFTER_ACK_THREADS": "0",
    })
    started: list[Playbot] = []

    def start(name: str, *args: str, defaults: bool = False) -> Playbot:
        """defaults: with the shipped heartbeat, lease and grace instead of short ones."""
        own = {k: v for k, v in env.items() if not (defaults and k in TIMINGS)}
        process = Playbot(list(args), own, tmp_path / f"{name}.log")
        started.append(process)
        return process

    [host] = ssh_hosts(1)
    trust([(host.name, host.address, host.port)], known_hosts)
    maria_world.server(host.name, connection="ssh", ip_address=host.address,
                       ssh_port=host.port, ssh_user=host.user, ssh_key_path=str(host.key_path),
                       host_vars={"ansible_python_interpreter": PYTHON})
    (maria_world.playbook_dir / "ticks.yml").write_text(TICKS)
    try:
        yield start, host, DramatiqJobQueue(redis_server.url)
    finally:
        for process in reversed(started):
            process.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def ticks(host: SshHost, label: str) -> list[float]:
    """The host's own times of each tick of the job labelled `label`."""
    path = host.home / f"ticks-{label}"
    return [float(t) for t in path.read_text().split()] if path.exists() else []


def starts(host: SshHost, label: str) -> int:
    path = host.home / f"starts-{label}"
    return len(path.read_text().splitlines()) if path.exists() else 0


@contextmanager
def two_jobs_on_one_server(world: World, host: SshHost, queue: DramatiqJobQueue
                           ) -> Iterator[tuple[str, str]]:
    """A long job running on the host and a short one queued behind it for the same host."""
    long_job = world.job("ticks", server=host.name, extra_vars={"label": "first", "count": 600})
    short_job = world.job("ticks", server=host.name, extra_vars={"label": "next", "count": 5})
    queue.enqueue(long_job)
    assert wait_for(lambda: len(ticks(host, "first")) >= 3, 60)
    queue.enqueue(short_job)
    yield long_job, short_job


def epoch(moment) -> float:  # type: ignore[no-untyped-def]
    return moment.replace(tzinfo=UTC).timestamp()


def assert_one_playbook_at_a_time(world: World, host: SshHost, long_job: str,
                                  short_job: str) -> None:
    first, then = world.get(long_job), world.get(short_job)
    assert first.status == JobStatus.failed
    assert first.error_message.startswith("worker lost: no heartbeat since")
    assert len(world.tickets(long_job)) == 1
    assert then.status == JobStatus.success, then.error_message
    assert starts(host, "first") == 1 and starts(host, "next") == 1  # each ran exactly once
    assert len(ticks(host, "next")) == 5
    # the first playbook had stopped working on the host before the reaper freed it, and
    # the next one started only after
    assert max(ticks(host, "first")) < epoch(first.completed_at) < min(ticks(host, "next"))


def nothing_pending_or_running(world: World) -> bool:
    from sqlalchemy import func, select

    from db.models import Job

    with world.factory() as session:
        return not session.scalar(select(func.count()).select_from(Job).where(
            Job.status.in_((JobStatus.pending, JobStatus.running))))


def test_a_sigkilled_workers_playbook_dies_with_it_and_the_next_job_runs_after_the_reap(
        maria_world, stack, tmp_path):  # noqa: F811
    world = maria_world
    start, host, queue = stack
    start("clock", "clock")
    doomed = start("worker-a", "worker", "--threads", "1")
    with two_jobs_on_one_server(world, host, queue) as (long_job, short_job):
        other = start("worker-b", "worker", "--threads", "1")  # takes the next job: waits
        assert wait_for(other.started, 30), other.tail()
        run_dir = tmp_path / "runs" / long_job
        assert (run_dir / "env" / "extravars").exists()

        # when the worker running the long job is killed
        killed_at = time.time()
        doomed.signal(signal.SIGKILL)
        doomed.process.wait(10)

        # then its playbook stops with it at once, the reaper ends its job, and the next
        # job runs once the server is free
        assert wait_for(lambda: world.get(short_job).status == JobStatus.success, 60), (
            doomed.tail())
    # (a task already sent over SSH may still tick once: the host runs what it was given)
    assert len([t for t in ticks(host, "first") if t > killed_at]) <= 1
    assert epoch(world.get(long_job).completed_at) - killed_at < HEARTBEAT + GRACE + 5 + 2
    assert_one_playbook_at_a_time(world, host, long_job, short_job)

    # the dead worker's run directory (its extra vars) is swept by the next worker to start
    assert run_dir.exists()
    start("worker-c", "worker", "--threads", "1")
    assert wait_for(lambda: not run_dir.exists(), 30)
    time.sleep(6)  # Dramatiq redelivers the dead worker's message: the claim refuses it
    assert starts(host, "first") == 1
    assert nothing_pending_or_running(world)


def test_a_sigstopped_workers_playbook_is_stopped_by_its_lease_before_the_reaper_frees_the_server(
        maria_world, stack):  # noqa: F811
    world = maria_world
    start, host, queue = stack
    start("clock", "clock")
    stalled = start("worker-a", "worker", "--threads", "1")
    with two_jobs_on_one_server(world, host, queue) as (long_job, short_job):
        other = start("worker-b", "worker", "--threads", "1")
        assert wait_for(other.started, 30), other.tail()

        # when the worker running the long job stops (SIGSTOP: a pause, a hung VM)
        stopped_at = time.time()
        stalled.signal(signal.SIGSTOP)

        # then its guard stops the playbook once the lease runs out, the reaper ends the
        # job after its grace, and only then does the next job run on the server
        assert wait_for(lambda: world.get(short_job).status == JobStatus.success, 60), (
            stalled.tail())
        fenced_by = stopped_at + LEASE + 0.5  # the lease's deadline is its last renewal's
        assert len([t for t in ticks(host, "first") if t > fenced_by]) <= 1
        assert_one_playbook_at_a_time(world, host, long_job, short_job)

        # and when the stopped worker wakes up, it neither ends the reaped job again nor
        # runs anything twice
        stalled.signal(signal.SIGCONT)
        time.sleep(HEARTBEAT * 4)
    assert stalled.process.poll() is None, stalled.tail()
    assert world.get(long_job).error_message.startswith("worker lost: no heartbeat since")
    assert starts(host, "first") == 1 and starts(host, "next") == 1
    assert nothing_pending_or_running(world)
    stalled.signal(signal.SIGTERM)
    assert stalled.process.wait(40) == 0


def test_with_the_shipped_timings_a_stalled_workers_job_ends_within_20_s_of_its_heartbeat(
        maria_world, stack):  # noqa: F811
    # given the default heartbeat (5 s), lease (10 s), grace (15 s) and clock pass (5 s)
    world = maria_world
    start, host, queue = stack
    start("clock", "clock", defaults=True)
    stalled = start("worker-a", "worker", "--threads", "1", defaults=True)
    with two_jobs_on_one_server(world, host, queue) as (long_job, short_job):
        other = start("worker-b", "worker", "--threads", "1", defaults=True)
        assert wait_for(other.started, 30), other.tail()

        # when the worker running the long job stops
        stalled.signal(signal.SIGSTOP)
        time.sleep(1)
        last_heartbeat = epoch(world.get(long_job).heartbeat_at)

        # then its playbook stops 10 s after its last heartbeat, its job ends failed within
        # 20 s of it, and the next job runs after
        assert wait_for(lambda: world.get(short_job).status == JobStatus.success, 90), (
            stalled.tail())
    late = [t - last_heartbeat for t in ticks(host, "first") if t > last_heartbeat + 10 + 0.5]
    assert len(late) <= 1, f"ticks {late} s after the last heartbeat"
    # grace 15 s + one clock pass every 5 s; the pass itself takes time on a loaded machine
    reaped_after = epoch(world.get(long_job).completed_at) - last_heartbeat
    assert reaped_after <= 20 + 3, f"reaped {reaped_after:.1f} s after the last heartbeat"
    assert_one_playbook_at_a_time(world, host, long_job, short_job)
    assert nothing_pending_or_running(world)
