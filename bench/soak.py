"""Figure 10 — soak: many launches over many servers while a worker is SIGKILLed and Redis
restarts, counting what a user would call broken.

The product runs as an install runs it: `playbot web` takes signed `/run-playbook soak
<server> n=<i>` commands (full: 500 launches over 50 servers; quick: 60 over 10; smoke: 12
over 4 — each launch its own `n`, so none is a repeat of another), two `playbot worker
--threads 2` processes (four worker threads) run them, `playbot clock` reaps and requeues,
MariaDB and Redis (no persistence, Debian's default) hold it all, FakeSlack stands in for
Slack. The launches are sent at once by four concurrent senders; one server runs one job at
a time, so most runs wait their turn. When a third of the launches have ended, one worker is
SIGKILLed (a process manager starts a new one two seconds later); when half have ended,
Redis is restarted, losing every queued message.

Reported (all but the rate must be 0):
- `lost`: launches Slack acked that have no job, or whose job never ended;
- `run_twice`: launches whose playbook ran more than once (each run appends its `n` to a
  file on the host);
- `stuck`: jobs not ended (pending, running, awaiting approval) when the soak gave up;
- `deadlock_errors`: MariaDB deadlock errors (1213) in any process's log.
Value: launches per second, first command sent to the last job ended. Baseline: the same
rate before the faults (launches ended when the worker was killed, over the time until
then), so the ratio is what the faults cost. Jobs of the killed worker end `failed`
("worker lost", counted as `reaped`): they ended, and were not run again.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bench.context import BenchContext, require
from bench.procs import Child
from bench.results import Figure
from bench.stack import OPERATOR, PLAYBOT, SIGNING_SECRET, ProductStack
from db.models import ACTIVE_JOB_STATUSES, Job, JobStatus
from db.session import transaction

TITLE = "Soak: 500 launches over 50 servers, 4 worker threads in 2 processes, a worker " \
        "SIGKILLed and Redis restarted mid-way"
PLAYBOOK = "soak"
SENDERS = 4
WORKERS = 2
THREADS_PER_WORKER = 2
CHANNELS = 5
POLL_S = 0.5
# Nothing active and nothing new for this long: what is missing will not come (longer than
# the redelivery of a dead worker's messages, 60 s, and the reaper's grace)
QUIET_S = 90.0
DEADLOCK = re.compile(r"\b1213\b|Deadlock found")

SOAK_SIDECAR = """\
description: One short run per launch (benchmarks, soak)
variables:
  n: {type: integer, required: true, min: 0, description: Launch number}
"""


def soak_playbook(runs_file: str) -> str:
    """Three quick tasks; the command appends the launch's number to `runs_file`."""
    return f"""\
- name: soak
  hosts: all
  gather_facts: false
  tasks:
    - name: say which launch this is
      debug:
        msg: "launch {{{{ n }}}} on {{{{ inventory_hostname }}}}"
    - name: record that this launch ran
      shell: echo "{{{{ n }}}} {{{{ inventory_hostname }}}}" >> {runs_file}
      changed_when: false
    - name: done
      debug:
        msg: done
"""


@dataclass(frozen=True)
class JobRow:
    status: JobStatus
    error_message: str


class SoakStack(ProductStack):
    """The product stack with `soak` registered, two workers and the clock."""

    def __init__(self, ctx: BenchContext, *, slack_api_url: str, servers: int) -> None:
        self.workers: list[Child] = []
        self.clock: Child | None = None
        self._started = 0
        super().__init__(ctx, "soak", slack_api_url=slack_api_url, servers=servers)
        try:
            self.runs_file = self.tmp / "runs.log"  # outside the playbook dir (its hash)
            self.runs_file.touch()
            (self.playbook_dir / f"{PLAYBOOK}.yml").write_text(soak_playbook(str(self.runs_file)))
            (self.playbook_dir / f"{PLAYBOOK}.playbot.yml").write_text(SOAK_SIDECAR)
            registry = require("core.playbook_registry", "sync_playbooks")
            with transaction(self.session_factory) as session:
                registry.sync_playbooks(session, self.playbook_dir)
        except BaseException:
            super().stop()
            raise

    def start_worker(self, threads: int = THREADS_PER_WORKER) -> Child:
        require("workers.main", "run_worker")
        self._started += 1
        child = Child([PLAYBOT, "worker", "--threads", str(threads)], env=self.env(),
                      log_path=self.tmp / f"worker-{self._started}.log")
        self.workers.append(child)
        return child

    def start_clock(self) -> Child:
        require("workers.main", "run_clock")
        self.clock = Child([PLAYBOT, "clock"], env=self.env(), log_path=self.tmp / "clock.log")
        return self.clock

    def kill_worker(self, child: Child) -> None:
        """SIGKILL the worker process itself (its guards see it die), as the OOM killer does."""
        os.kill(child.pid, signal.SIGKILL)
        child.process.wait()

    def children(self) -> list[Child]:
        return [c for c in (self.web, self.clock, *self.workers) if c is not None]

    def deadlock_errors(self) -> int:
        count = 0
        for child in self.children():
            try:
                text = child.log_path.read_text(errors="replace")
            except OSError:
                continue
            count += sum(1 for line in text.splitlines() if DEADLOCK.search(line))
        return count

    def errors(self, limit: int = 12) -> list[str]:
        """The first distinct ERROR / CRITICAL lines of every process's log (Redis being
        down while it restarts aside), for the report."""
        seen: list[str] = []
        for child in self.children():
            try:
                lines = child.log_path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if (" ERROR " in line or " CRITICAL " in line) and "Error 111" not in line:
                    text = f"{child.log_path.name}: {line[24:300]}"
                    if text not in seen:
                        seen.append(text)
        return seen[:limit]

    def logs(self) -> str:
        return "\n".join(f"--- {c.log_path.name}:\n{c.tail()}" for c in self.children())

    def stop(self) -> None:
        for child in [c for c in (self.clock, *self.workers) if c is not None]:
            child.terminate()
        for child in [c for c in (self.clock, *self.workers) if c is not None]:
            child.stop()
        super().stop()


class Soak:
    """Sends the launches, injects the faults, and counts the outcome."""

    def __init__(self, stack: SoakStack, fake: Any, launches: int, servers: list[str]) -> None:
        self.stack = stack
        self.fake = fake
        self.launches = launches
        self.servers = servers
        self.acked: set[int] = set()
        self.refused: dict[int, str] = {}
        self._lock = threading.Lock()
        self.events: dict[str, float] = {}
        self._last: dict[int, JobRow] = {}

    def _send(self, numbers: list[int]) -> None:
        from bot.fake_slack import SlackSender

        sender = SlackSender(f"http://127.0.0.1:{self.stack.web_port}/slack/events",
                             SIGNING_SECRET, self.fake)
        for n in numbers:
            server = self.servers[n % len(self.servers)]
            try:
                # a trigger id of its own: Slack's are unique, and a launch's request key
                # is built from it (a repeated one is answered as a repeat)
                response = sender.command("/run-playbook", f"{PLAYBOOK} {server} n={n}",
                                          user=OPERATOR, channel=f"C_SOAK{n % CHANNELS}",
                                          trigger_id=f"trigger-soak-{n}")
                ok, why = response.status == 200, f"HTTP {response.status}"
            except OSError as error:
                ok, why = False, f"{type(error).__name__}: {error}"
            with self._lock:
                if ok:
                    self.acked.add(n)
                else:
                    self.refused[n] = why

    def ended(self) -> dict[int, JobRow]:
        """Every job of the soak by its launch number (the newest if several); the last
        answer again when the database fails this once."""
        try:
            with self.stack.session_factory() as session:
                rows = session.execute(
                    select(Job.extra_vars, Job.status, Job.error_message).order_by(Job.id)).all()
        except SQLAlchemyError as error:
            self.stack.ctx.log(f"soak: polling the jobs failed ({error.__class__.__name__}); "
                               "trying again")
            return self._last
        self._last = {int(extra["n"]): JobRow(status, error or "") for extra, status, error
                      in rows if isinstance(extra, dict) and "n" in extra}
        return self._last

    def run(self, timeout: float) -> dict[str, Any]:
        ctx = self.stack.ctx
        started = time.monotonic()
        numbers = list(range(self.launches))
        with ThreadPoolExecutor(SENDERS) as pool:
            for chunk in range(SENDERS):
                pool.submit(self._send, numbers[chunk::SENDERS])
        self.events["all_sent_s"] = time.monotonic() - started
        ctx.log(f"soak: {len(self.acked)} launches acked in {self.events['all_sent_s']:.1f}s")
        killed = restarted = False
        before_faults = 0
        last_end = last_change = started
        seen = (0, 0)
        deadline = started + timeout
        while time.monotonic() < deadline:
            jobs = self.ended()
            done = sum(1 for job in jobs.values() if job.status.is_final)
            if (len(jobs), done) != seen:
                last_change = time.monotonic()
                if done != seen[1]:
                    last_end = last_change
                seen = (len(jobs), done)
            if not killed and done >= self.launches / 3:
                victim = self.stack.workers[0]
                self.stack.kill_worker(victim)
                killed = True
                before_faults = done
                self.events["worker_killed_s"] = time.monotonic() - started
                self.events["jobs_created_at_kill"] = len(jobs)
                ctx.log(f"soak: SIGKILLed worker pid {victim.pid} after {done} launches ended")
                time.sleep(2)  # a process manager brings a new one up
                self.stack.start_worker()
            if killed and not restarted and done >= self.launches / 2:
                self.stack.redis.restart()
                restarted = True
                self.events["redis_restarted_s"] = time.monotonic() - started
                self.events["jobs_created_at_redis_restart"] = len(jobs)
                ctx.log(f"soak: Redis restarted after {done} launches ended")
            if restarted and done >= len(self.acked) and len(jobs) >= len(self.acked):
                break
            if restarted and done == len(jobs) and time.monotonic() - last_change > QUIET_S:
                ctx.log(f"soak: {len(self.acked) - len(jobs)} acked launches have no job and "
                        f"nothing moved for {QUIET_S:.0f}s; giving up on them")
                break
            time.sleep(POLL_S)
        jobs = self.ended()
        return self._outcome(jobs, started, last_end, before_faults)

    def _outcome(self, jobs: dict[int, JobRow], started: float, last_end: float,
                 before_faults: int) -> dict[str, Any]:
        counts: dict[int, int] = {}
        for line in self.stack.runs_file.read_text().splitlines():
            if line.strip():
                n = int(line.split()[0])
                counts[n] = counts.get(n, 0) + 1
        statuses: dict[str, int] = {}
        for job in jobs.values():
            statuses[job.status.value] = statuses.get(job.status.value, 0) + 1
        lost = sorted(n for n in self.acked if n not in jobs or not jobs[n].status.is_final)
        stuck = sorted(n for n, job in jobs.items() if job.status in ACTIVE_JOB_STATUSES)
        reaped = sum(1 for job in jobs.values() if job.status == JobStatus.failed
                     and job.error_message.startswith("worker lost"))
        elapsed = max(last_end - started, 1e-9)
        killed_at = self.events.get("worker_killed_s") or elapsed
        return {
            "launches": self.launches, "acked": len(self.acked),
            "refused": len(self.refused), "refused_why": sorted(set(self.refused.values()))[:5],
            "lost": len(lost), "lost_launches": lost[:20],
            "run_twice": sum(1 for c in counts.values() if c > 1),
            "stuck": len(stuck), "stuck_launches": stuck[:20],
            "deadlock_errors": self.stack.deadlock_errors(),
            "log_errors": self.stack.errors(),
            "statuses": statuses, "reaped": reaped, "ran": len(counts),
            "elapsed_s": elapsed, "launches_per_s": len(self.acked) / elapsed,
            "before_faults_per_s": before_faults / killed_at if before_faults else 0.0,
            **{k: round(v, 2) for k, v in self.events.items()},
        }


def run(ctx: BenchContext) -> list[Figure]:
    from bot.fake_slack import FakeSlack

    launches = ctx.size(500, 60, smoke=12)
    servers = ctx.size(50, 10, smoke=4)
    timeout = ctx.size(3600, 900, smoke=420)
    fake = FakeSlack().start()
    stack: SoakStack | None = None
    try:
        stack = SoakStack(ctx, slack_api_url=fake.api_url, servers=servers)
        for _ in range(WORKERS):
            stack.start_worker()
        stack.start_clock()
        stack.start_web()
        ctx.settle()
        outcome = Soak(stack, fake, launches, stack.servers).run(timeout)
        if outcome["lost"] or outcome["stuck"]:
            ctx.log(f"soak: lost {outcome['lost_launches']}, stuck {outcome['stuck_launches']}"
                    f";\n{stack.logs()}")
    finally:
        if stack is not None:
            stack.stop()
        fake.stop()
    broken = ("lost", "run_twice", "stuck", "deadlock_errors")
    return [Figure(
        key="soak", title=f"Soak: {launches} launches over {servers} servers, "
                          f"{WORKERS * THREADS_PER_WORKER} worker threads in {WORKERS} "
                          "processes, a worker SIGKILLed and Redis restarted",
        value=outcome["launches_per_s"], unit="launches/s",
        baseline=outcome["before_faults_per_s"] or outcome["launches_per_s"],
        baseline_label="launches/s before the faults",
        target="lost, run twice, stuck, deadlock errors all 0",
        met=all(outcome[name] == 0 for name in broken),
        extra={"servers": servers, "worker_processes": WORKERS,
               "worker_threads": WORKERS * THREADS_PER_WORKER, **outcome})]
