"""Figure 7 — fan-out: one `/run-playbook <playbook> tag:fleet` on many servers until every job
has ended, beside plain `ansible-playbook -f <hosts>` over the same inventory and playbook.

The product runs for real, as an install runs it: `playbot web` (waitress) takes the signed
slash command, `playbot worker` (Dramatiq on Redis, the Procfile's default threads) runs what
the launch asked for, `playbot clock` does the housekeeping beside them, MariaDB holds it
all, FakeSlack stands in for Slack's Web API. The database holds 50 servers (quick: 10,
smoke: 3) tagged `fleet`, every one `connection: local` (`fleet-01` ...); the workers get
PLAYBOT_FORKS equal to the host count, so they may work on every host at once as `-f` does.
The playbook (`fleet_check`, below) is a realistic small one: set_fact, debug, assert and
one command task, seven tasks that each print one `ok: [host]` line per host (only the
command starts a module process on the host: 50 of them at once on 2 CPUs would measure
the CPU, not the product).

Value: wall time from the signed command sent to the moment the database shows every job of
the launch ended (polled every 20 ms); the median of the rounds (full: 3, quick/smoke: 1).
Baseline: `ansible-playbook -f <hosts> -i <inventory> fleet_check.yml` on the very same file,
with an INI inventory of the same hosts and host variables, output read through a pipe; the
product and plain runs alternate. Target: <= 1.3x plain.

Whatever the product does with a `tag:` launch is measured: one ansible-playbook per
server (the seed) or one run per launch. `jobs_started_spread_s` (first to last job
started) and `distinct_run_ids` tell which.

Also measured, in the same run:
- `fanout.slack_calls`: every Web API call FakeSlack receives from the command until Slack
  has been quiet for a second after the last job ended, for the fleet launch — beside the
  calls of a one-server launch of the same playbook (also the warm-up). Target: within
  Slack's rate limits for the launch's duration (`bench.slack_calls.rate_bound`: one channel
  message a second + Tier-3 chat.update + 10) and growing with duration, not with hosts:
  at most max(2, 1.5 x duration ratio) the one-server calls; and one channel message per
  launch, not per server: top-level `chat.postMessage` calls (thread replies aside) at most
  one more than the one-server launch made (`channel_messages`).
- per-host job_logs completeness (`job_logs_complete`): every job holds its own host's lines
  numbered 1..N without gaps or duplicates, a `PLAY [` header, seven `TASK [` headers, the
  seven `ok: [<its host>]` lines, its recap line, and no line naming another fleet host.

`bench/fanout_ssh.py` runs the same measurement over real SSH test hosts (`fanout.ssh`).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import case, distinct, func, select

from bench.context import BenchContext, require
from bench.procs import Child, bench_env
from bench.results import Figure
from bench.slack_calls import CONSTANT_CALLS, rate_bound
from bench.stack import OPERATOR, PLAYBOT, SIGNING_SECRET, ProductStack
from db.models import Environment, Job, JobLog, JobStatus, Server
from db.session import transaction

TITLE = "Fan-out: one tag: launch on 50 local servers vs plain ansible-playbook -f 50"
MAX_RATIO = 1.3
TAG = "fleet"
PLAYBOOK = "fleet_check"
OK_TASKS = 7  # tasks of FLEET_CHECK, each printing one `ok: [host]` line per host
WORKER_THREADS = 2  # `playbot worker`'s default, as the Procfile runs it
POLL_S = 0.02
SLACK_QUIET_S = 1.0  # the launch's Slack traffic is over once FakeSlack was quiet this long
SLACK_QUIET_MAX_S = 20.0

FLEET_CHECK = """\
- name: fleet check
  hosts: all
  gather_facts: false
  vars:
    release: "1.4.2"
    app_root: /srv/app
  tasks:
    - name: work out the release directory
      set_fact:
        release_dir: "{{ app_root }}/releases/{{ release }}"
    - name: show where the release goes
      debug:
        msg: "{{ inventory_hostname }} gets {{ release_dir }}"
    - name: read the kernel version
      command: uname -r
      register: kernel
      changed_when: false
    - name: remember the kernel
      set_fact:
        kernel_version: "{{ kernel.stdout }}"
    - name: check the kernel is known
      assert:
        that: kernel_version | length > 0
        quiet: true
    - name: report the host
      debug:
        msg: "{{ inventory_hostname }}: kernel {{ kernel_version }}, release {{ release }}"
    - name: say done
      debug:
        msg: "{{ inventory_hostname }} checked"
"""


@dataclass(frozen=True)
class FleetHost:
    """One server of the fleet: its `servers` row and the same host in the plain inventory."""

    hostname: str
    address: str = "127.0.0.1"
    port: int = 22
    user: str | None = None
    key_path: str | None = None
    local: bool = True
    host_vars: tuple[tuple[str, str], ...] = ()  # non-connection variables (servers.host_vars)

    def server_row(self) -> Server:
        if self.local:
            return Server(hostname=self.hostname, environment=Environment.development,
                          connection="local", ip_address=self.address, tags=[TAG],
                          host_vars=dict(self.host_vars))
        return Server(hostname=self.hostname, environment=Environment.development,
                      connection="ssh", ip_address=self.address, ssh_port=self.port,
                      ssh_user=self.user, ssh_key_path=self.key_path, tags=[TAG],
                      host_vars=dict(self.host_vars))

    def inventory_line(self) -> str:
        """The host in an INI inventory with the variables the worker gives it."""
        if self.local:
            return (f"{self.hostname} ansible_connection=local "
                    f"ansible_python_interpreter={sys.executable}")
        parts = [self.hostname, f"ansible_host={self.address}", f"ansible_port={self.port}"]
        if self.user:
            parts.append(f"ansible_user={self.user}")
        if self.key_path:
            parts.append(f"ansible_ssh_private_key_file={self.key_path}")
        parts += [f"{name}={value}" for name, value in self.host_vars]
        return " ".join(parts)


def local_fleet(count: int) -> list[FleetHost]:
    """`count` inventory hostnames, all `ansible_connection=local`."""
    return [FleetHost(hostname=f"fleet-{n:02d}") for n in range(1, count + 1)]


def write_inventory(path: Path, hosts: list[FleetHost]) -> Path:
    """The plain baseline's INI inventory: the hosts, all in group `fleet` (their tag)."""
    lines = [host.inventory_line() for host in hosts]
    lines += ["", f"[{TAG}]", *(host.hostname for host in hosts)]
    path.write_text("\n".join(lines) + "\n")
    return path


class FleetStack(ProductStack):
    """The product stack with a tagged fleet of servers, `fleet_check` registered, extra
    settings for every process (PLAYBOT_FORKS, ...) and `playbot clock` beside the worker."""

    def __init__(self, ctx: BenchContext, label: str, *, slack_api_url: str,
                 hosts: list[FleetHost], extra_env: dict[str, str]) -> None:
        self.extra_env = dict(extra_env)
        self.clock: Child | None = None
        super().__init__(ctx, label, slack_api_url=slack_api_url)
        try:
            (self.playbook_dir / f"{PLAYBOOK}.yml").write_text(FLEET_CHECK)
            self.playbooks[PLAYBOOK] = self.playbook_dir / f"{PLAYBOOK}.yml"
            registry = require("core.playbook_registry", "sync_playbooks")
            with transaction(self.session_factory) as session:
                session.add_all([host.server_row() for host in hosts])
                session.flush()
                registry.sync_playbooks(session, self.playbook_dir)
        except BaseException:
            super().stop()
            raise

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}

    def start_worker(self, threads: int = WORKER_THREADS) -> Child:
        require("workers.main", "run_worker")
        self.worker = Child([PLAYBOT, "worker", "--threads", str(threads)], env=self.env(),
                            log_path=self.tmp / "worker.log")
        return self.worker

    def start_clock(self) -> Child:
        """`playbot clock`: reaper, requeue, approval expiry, retention."""
        require("workers.main", "run_clock")
        self.clock = Child([PLAYBOT, "clock"], env=self.env(), log_path=self.tmp / "clock.log")
        return self.clock

    def logs(self) -> str:
        parts = []
        for name, child in (("web", self.web), ("worker", self.worker), ("clock", self.clock)):
            if child is not None:
                parts.append(f"--- {name} log:\n{child.tail()}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.clock is not None:
            self.clock.terminate()
            self.clock.stop()
        super().stop()


@dataclass
class HostLog:
    """What job_logs holds for one job of the launch."""

    hostname: str
    status: str
    rows: int
    first_line: int
    last_line: int
    distinct_lines: int
    play_headers: int
    task_headers: int
    own_ok_lines: int
    recap_lines: int
    foreign_lines: int  # lines naming another fleet host

    @property
    def complete(self) -> bool:
        return (self.rows > 0 and self.first_line == 1 and self.last_line == self.rows
                and self.distinct_lines == self.rows and self.play_headers >= 1
                and self.task_headers >= OK_TASKS and self.own_ok_lines == OK_TASKS
                and self.recap_lines >= 1 and self.foreign_lines == 0)


@dataclass
class Launch:
    """One `/run-playbook` launch driven until every job ended and Slack went quiet."""

    target: str
    jobs: int
    seconds: float  # command sent -> every job ended (seen in the database)
    db_seconds: float  # command sent -> the latest completed_at (the jobs' own clock)
    started_spread_s: float  # first to last job started_at
    started_after_s: list[float]  # each job's started_at after the command, sorted
    running_s: list[float]  # each job's started_at -> completed_at, sorted
    distinct_run_ids: int
    statuses: dict[str, int]
    slack_calls: int
    slack_seconds: float  # command sent -> the launch's last Slack call
    slack_methods: dict[str, int]
    channel_messages: int  # top-level chat.postMessage calls (not thread replies)
    errors: dict[str, str]  # hostname -> error_message of each job that did not succeed
    logs: list[HostLog] = field(default_factory=list)

    @property
    def logs_complete(self) -> bool:
        return len(self.logs) == self.jobs and all(log.complete for log in self.logs)


class FleetDriver:
    """Sends signed `/run-playbook fleet_check <target>` commands and waits for their jobs."""

    def __init__(self, stack: FleetStack, fake: Any) -> None:
        from bot.fake_slack import SlackSender

        self.stack = stack
        self.fake = fake
        self.sender = SlackSender(f"http://127.0.0.1:{stack.web_port}/slack/events",
                                  SIGNING_SECRET, fake)

    def launch(self, target: str, *, expected_jobs: int, timeout: float) -> Launch:
        """Run one launch to its end; raises if it does not end within `timeout` seconds."""
        channel = f"C_FANOUT_{uuid.uuid4().hex[:8].upper()}"
        first_call = len(self.fake.calls)
        sent_mono = time.monotonic()
        sent_wall = time.time()
        started = time.perf_counter()
        response = self.sender.command("/run-playbook", f"{PLAYBOOK} {target}", user=OPERATOR,
                                       channel=channel)
        if response.status != 200:
            raise RuntimeError(f"/run-playbook answered {response.status}: {response.body}")
        seconds = self._wait_ended(channel, expected_jobs, started, timeout)
        slack_calls = self._quiet_calls(first_call)
        last_call_at = max((call.at for call in slack_calls), default=sent_mono)
        methods: dict[str, int] = {}
        for call in slack_calls:
            methods[call.method] = methods.get(call.method, 0) + 1
        with self.stack.session_factory() as session:
            jobs = session.scalars(select(Job).where(Job.slack_channel_id == channel)).all()
            starts = [job.started_at.timestamp() for job in jobs if job.started_at]
            ends = [job.completed_at.timestamp() for job in jobs if job.completed_at]
            statuses: dict[str, int] = {}
            for job in jobs:
                statuses[job.status.value] = statuses.get(job.status.value, 0) + 1
            run_ids = len({job.run_id for job in jobs})
            errors = {job.server.hostname: job.error_message or "" for job in jobs
                      if job.status != JobStatus.success}
            running = sorted(job.completed_at.timestamp() - job.started_at.timestamp()
                             for job in jobs if job.started_at and job.completed_at)
        return Launch(
            target=target, jobs=len(jobs), seconds=seconds,
            db_seconds=(max(ends) - sent_wall) if ends else float("nan"),
            started_spread_s=(max(starts) - min(starts)) if starts else float("nan"),
            started_after_s=sorted(start - sent_wall for start in starts), running_s=running,
            distinct_run_ids=run_ids, statuses=statuses, slack_calls=len(slack_calls),
            slack_seconds=last_call_at - sent_mono, slack_methods=methods,
            channel_messages=sum(1 for call in slack_calls if call.method == "chat.postMessage"
                                 and not call.params.get("thread_ts")),
            errors=errors,
            logs=host_logs(self.stack, channel))

    def _wait_ended(self, channel: str, expected: int, started: float, timeout: float) -> float:
        final = [status.value for status in (JobStatus.success, JobStatus.failed,
                                             JobStatus.cancelled, JobStatus.archived)]
        query = (select(func.count(), func.sum(case((Job.status.in_(final), 1), else_=0)))
                 .where(Job.slack_channel_id == channel))
        deadline = started + timeout
        while time.perf_counter() < deadline:
            with self.stack.session_factory() as session:
                total, ended = session.execute(query).one()
            if total >= expected and int(ended or 0) == total:
                return time.perf_counter() - started
            time.sleep(POLL_S)
        raise RuntimeError(f"the launch's {expected} jobs did not all end within {timeout:.0f}s "
                           f"(channel {channel});\n{self.stack.logs()}")

    def _quiet_calls(self, first_call: int) -> list[Any]:
        """The calls since `first_call`, once FakeSlack has been quiet for SLACK_QUIET_S
        (at most SLACK_QUIET_MAX_S after the jobs ended)."""
        deadline = time.monotonic() + SLACK_QUIET_MAX_S
        while time.monotonic() < deadline:
            calls = self.fake.calls[first_call:]
            last = calls[-1].at if calls else 0.0
            if time.monotonic() - last >= SLACK_QUIET_S:
                break
            time.sleep(0.1)
        return list(self.fake.calls[first_call:])


def host_logs(stack: ProductStack, channel: str) -> list[HostLog]:
    """Per job of the launch: its job_logs rows, numbering, and its host's lines."""
    hostname = Server.hostname
    content = JobLog.content

    def count(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    own = func.concat("%[", hostname, "]%")
    statement = (
        select(hostname, Job.status, func.count(JobLog.id), func.min(JobLog.line_number),
               func.max(JobLog.line_number), func.count(distinct(JobLog.line_number)),
               count(content.like("%PLAY [%")), count(content.like("%TASK [%")),
               count(content.like(func.concat("%ok: [", hostname, "]%"))),
               count(content.like(func.concat("%", hostname, " %: ok=%"))),
               count(content.like(f"%[{TAG}-%]%") & ~content.like(own)))
        .join(Server, Job.server_id == Server.id)
        .outerjoin(JobLog, JobLog.job_id == Job.id)
        .where(Job.slack_channel_id == channel)
        .group_by(Job.id, hostname, Job.status)
        .order_by(hostname))
    with stack.session_factory() as session:
        rows = session.execute(statement).all()
    return [HostLog(hostname=row[0], status=row[1].value,
                    **dict(zip(("rows", "first_line", "last_line", "distinct_lines",
                                "play_headers", "task_headers", "own_ok_lines", "recap_lines",
                                "foreign_lines"), (int(value or 0) for value in row[2:]),
                               strict=True)))
            for row in rows]


def plain_ansible(playbook: Path, inventory: Path, forks: int, env: dict[str, str],
                  timeout: float) -> float:
    """Wall time of `ansible-playbook -f forks -i inventory playbook`; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "-f", str(forks), "-i", str(inventory),
                           str(playbook)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook {playbook.name} failed:\n"
                           f"{done.stdout.decode(errors='replace')[-3000:]}")
    return seconds


def plain_env(**extra: str) -> dict[str, str]:
    """The environment of the plain baseline: what the worker gives ansible-playbook."""
    return bench_env(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                     ANSIBLE_RETRY_FILES_ENABLED="False", PYTHONUNBUFFERED="1", **extra)


def launch_timeout(hosts: int) -> float:
    """How long one launch may take before the figure gives up (the seed runs one
    ansible-playbook per server, two at a time)."""
    return 120.0 + 6.0 * hosts


def measure(ctx: BenchContext, *, key: str, label: str, hosts: list[FleetHost],
            extra_env: dict[str, str], ansible_env: dict[str, str],
            prepare: Callable[[FleetStack], None] | None = None,
            describe: str = "local servers") -> list[Figure]:
    """Run the fan-out measurement on `hosts`: figures `<key>` and `<key>.slack_calls`.

    `extra_env` goes to every product process; `ansible_env` is the plain baseline's
    environment; `prepare(stack)` runs before the processes start (e.g. to pin host keys).
    """
    from bot.fake_slack import FakeSlack

    count = len(hosts)
    rounds = ctx.size(3, 1)
    fake = FakeSlack().start()
    stack: FleetStack | None = None
    try:
        stack = FleetStack(ctx, label, slack_api_url=fake.api_url, hosts=hosts,
                           extra_env={"PLAYBOT_FORKS": str(count), **extra_env})
        if prepare is not None:
            prepare(stack)
        stack.start_worker()
        stack.start_clock()
        stack.start_web()
        driver = FleetDriver(stack, fake)
        inventory = write_inventory(stack.tmp / "fleet.ini", hosts)
        playbook = stack.playbooks[PLAYBOOK]
        timeout = launch_timeout(count)
        ctx.settle()

        # warm-up and the Slack calls' baseline: a one-server launch of the same playbook
        single = driver.launch(hosts[0].hostname, expected_jobs=1, timeout=timeout)
        _check(single, stack)
        plain_ansible(playbook, inventory, count, ansible_env, timeout)
        ctx.log(f"{key}: one server {single.seconds:.2f}s, {single.slack_calls} Slack calls")

        product: list[Launch] = []
        plain: list[float] = []
        for _ in range(rounds):
            fleet = driver.launch(f"tag:{TAG}", expected_jobs=count, timeout=timeout)
            _check(fleet, stack)
            product.append(fleet)
            plain.append(plain_ansible(playbook, inventory, count, ansible_env, timeout))
            ctx.log(f"{key}: {count} hosts: product {fleet.seconds:.2f}s, plain "
                    f"{plain[-1]:.2f}s; {fleet.slack_calls} Slack calls; jobs started over "
                    f"{fleet.started_spread_s:.2f}s; logs complete: {fleet.logs_complete}")
        peak_rss = stack.worker.peak_rss_kib() if stack.worker else None
    finally:
        if stack is not None:
            stack.stop()
        fake.stop()

    value = statistics.median(launch.seconds for launch in product)
    base = statistics.median(plain)
    logs_complete = all(launch.logs_complete for launch in product)
    incomplete = sorted({log.hostname for launch in product for log in launch.logs
                         if not log.complete})
    last = product[-1]
    fanout = Figure(
        key=key, title=f"Fan-out: one tag: launch on {count} {describe}, until every job ended",
        value=value, unit="s", baseline=base, baseline_label=f"plain ansible-playbook -f {count}",
        target=f"<= {MAX_RATIO}x plain; every job's job_logs complete",
        met=value / base <= MAX_RATIO and logs_complete,
        extra={"hosts": count, "forks": count, "worker_threads": WORKER_THREADS,
               "rounds": rounds, "product_s": [launch.seconds for launch in product],
               "plain_s": plain, "overhead_s": value - base,
               "jobs_ended_by_completed_at_s": statistics.median(
                   launch.db_seconds for launch in product),
               "jobs_started_spread_s": last.started_spread_s,
               "jobs_started_after_s": _spread(last.started_after_s),
               "job_running_s": _spread(last.running_s),
               "distinct_run_ids": last.distinct_run_ids, "statuses": last.statuses,
               "one_server_launch_s": single.seconds,
               "job_logs_complete": logs_complete, "job_logs_incomplete_hosts": incomplete,
               "job_logs_rows_per_job_min": min(log.rows for log in last.logs),
               "job_logs_rows_per_job_max": max(log.rows for log in last.logs),
               "job_logs_own_ok_lines_min": min(log.own_ok_lines for log in last.logs),
               "worker_peak_rss_mib": round(peak_rss / 1024, 1) if peak_rss else None})

    calls = statistics.median(launch.slack_calls for launch in product)
    duration = statistics.median(max(launch.seconds, launch.slack_seconds) for launch in product)
    single_duration = max(single.seconds, single.slack_seconds)
    bound = rate_bound(duration)
    duration_ratio = duration / single_duration
    allowed = max(2.0, 1.5 * duration_ratio)
    calls_ratio = calls / single.slack_calls if single.slack_calls else float("inf")
    slack = Figure(
        key=f"{key}.slack_calls",
        title=f"Slack API calls for one tag: launch on {count} {describe}",
        value=calls, unit="calls", baseline=single.slack_calls,
        baseline_label="calls for a one-server launch",
        target=(f"within the rate-limit bound for its duration (1/s + 50/min + "
                f"{CONSTANT_CALLS}); grows with duration, not hosts (ratio <= max(2, 1.5 x "
                f"duration ratio)); channel messages at most one more than a one-server "
                f"launch's"),
        met=(calls <= bound and calls_ratio <= allowed
             and last.channel_messages <= single.channel_messages + 1),
        extra={"hosts": count, "duration_s": duration, "calls_per_s": calls / duration,
               "calls_per_host": calls / count, "rate_limit_bound": bound,
               "channel_messages": last.channel_messages,
               "baseline_channel_messages": single.channel_messages,
               "baseline_duration_s": single_duration,
               "duration_ratio": duration_ratio, "allowed_calls_ratio": allowed,
               "methods": last.slack_methods, "baseline_methods": single.slack_methods})
    return [fanout, slack]


def _spread(values: list[float]) -> dict[str, float]:
    """min / median / max of a list (the per-job figures of one launch)."""
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _check(launch: Launch, stack: FleetStack) -> None:
    if launch.statuses != {JobStatus.success.value: launch.jobs}:
        failed = "; ".join(f"{host}: {error}" for host, error in
                           sorted(launch.errors.items())[:5])
        raise RuntimeError(f"launch {launch.target} ended {launch.statuses} (not all success: "
                           f"{failed});\n{stack.logs()}")


def run(ctx: BenchContext) -> list[Figure]:
    hosts = local_fleet(ctx.size(50, 10, smoke=3))
    return measure(ctx, key="fanout", label="fanout", hosts=hosts, extra_env={},
                   ansible_env=plain_env())
