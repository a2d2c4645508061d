"""The product running for real: MariaDB, Redis, FakeSlack, `playbot web`-style and worker
processes — what figures 1, 3, 4 and 6 measure.

`ProductStack` seeds a fresh database (operators and local development servers — one of
each unless asked for more — and the benchmark playbooks, registered by the registry's own
`sync_playbooks`), starts the web process (`playbot web`: waitress) and, when asked, the
worker process (`playbot worker`), both exactly as an install runs them, with the
environment it would give them, and stops all of it on `stop()`.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select

from bench.context import BenchContext, require
from bench.playbooks import MARKER, write_playbooks
from bench.procs import Child, bench_env, free_port, wait_port
from db.models import Environment, Job, JobLog, Role, Server, User
from db.session import make_engine, make_session_factory, transaction

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench-token"
OPERATOR = "U_BENCH_OP"
CHANNEL = "C_BENCH"
SERVER = "local"
WEB_THREADS = 8  # `playbot web`'s default
PLAYBOT = str(Path(sys.executable).parent / "playbot")


def read_ready(child: Child, timeout: float = 60) -> dict[str, Any]:
    """The JSON line a `bench.serve` process prints once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in child.log_path.read_text(errors="replace").splitlines():
            if line.startswith('{"ready"'):
                return json.loads(line)
        if not child.alive():
            raise RuntimeError(f"server process exited:\n{child.tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"server process not ready within {timeout}s:\n{child.tail()}")


@dataclass(frozen=True)
class LogRows:
    rows: int
    first_line: int
    last_line: int
    marker_lines: int  # lines showing one `line-NNNNNN` marker of the lines_N playbooks

    @property
    def contiguous(self) -> bool:
        return self.rows == 0 or (self.first_line == 1 and self.last_line == self.rows)


class ProductStack:
    """One running Playbot: database, Redis, Slack (fake), web process, optional worker."""

    def __init__(self, ctx: BenchContext, label: str, *, slack_api_url: str,
                 playbooks: dict[str, Any] | None = None, log_level: str = "WARNING",
                 operators: int = 1, servers: int = 1) -> None:
        self.ctx = ctx
        self.label = label
        self.slack_api_url = slack_api_url
        self.log_level = log_level
        self.web: Child | None = None
        self.web_port: int | None = None
        self.worker: Child | None = None
        self.operators = [OPERATOR] + [f"{OPERATOR}{n}" for n in range(2, operators + 1)]
        self.servers = [SERVER] + [f"{SERVER}-{n:02d}" for n in range(2, servers + 1)]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"playbot-bench-{label}-"))
        try:
            self.playbook_dir = self.tmp / "playbooks"
            self.playbooks = write_playbooks(self.playbook_dir, **(playbooks or {}))
            self.database_url = ctx.servers.database(label)
            self.redis = ctx.servers.redis()
            self.engine = make_engine(self.database_url)
            self.session_factory = make_session_factory(self.engine)
            self._seed()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    # environment ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """What `playbot web` / `playbot worker` read, as an install would set it."""
        return bench_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self.slack_api_url,
            PLAYBOOK_DIR=str(self.playbook_dir),
            PLAYBOT_RUNTIME_DIR=str(self.tmp / "runs"),
            PLAYBOT_ARCHIVE_DIR=str(self.tmp / "archive"),
            LOG_LEVEL=self.log_level,
        )

    def _seed(self) -> None:
        registry = require("core.playbook_registry", "sync_playbooks")
        with transaction(self.session_factory) as session:
            for slack_id in self.operators:
                session.add(User(username=slack_id.lower().replace("_", "-"),
                                 role=Role.operator, slack_user_id=slack_id))
            for hostname in self.servers:
                session.add(Server(hostname=hostname, environment=Environment.development,
                                   connection="local", ip_address="127.0.0.1"))
            session.flush()
            registry.sync_playbooks(session, self.playbook_dir)

    def log_rows(self, job_pk: int) -> LogRows:
        """What job_logs holds for a job: rows, line numbers, marker lines."""
        with self.session_factory() as session:
            rows, first, last, markers = session.execute(
                select(func.count(), func.min(JobLog.line_number), func.max(JobLog.line_number),
                       func.sum(case((JobLog.content.like(f'%"{MARKER}%'), 1), else_=0)))
                .where(JobLog.job_id == job_pk)).one()
        return LogRows(rows=rows or 0, first_line=first or 0, last_line=last or 0,
                       marker_lines=int(markers or 0))

    # processes -----------------------------------------------------------------------------
    def start_web(self, threads: int = WEB_THREADS, *, wait: bool = True) -> Child:
        """Start `playbot web` on a free loopback port; with `wait`, return once it accepts
        connections (else call `wait_web()`)."""
        require("bot.web", "serve")
        self.web_port = free_port()
        self.web = Child([PLAYBOT, "web", "--host", "127.0.0.1", "--port", str(self.web_port),
                          "--threads", str(threads)],
                         env=self.env(), log_path=self.tmp / "web.log")
        if wait:
            self.wait_web()
        return self.web

    def wait_web(self) -> None:
        assert self.web is not None and self.web_port is not None
        try:
            wait_port(self.web_port, 60, self.web.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; web log:\n{self.web.tail()}") from None

    def start_worker(self) -> Child:
        """Start `playbot worker` (Dramatiq on Redis) as an install runs it."""
        require("workers.main", "run_worker")
        self.worker = Child([PLAYBOT, "worker"], env=self.env(),
                            log_path=self.tmp / "worker.log")
        return self.worker

    def ack_mode(self) -> bool:
        """The product app's `process_before_response`, read from an app built in this
        process with the same settings (so the bare baseline acks the same way)."""
        runtime_mod = require("bot.runtime", "build_runtime")
        settings_mod = require("bot.settings", "Settings")
        env = self.env()
        settings = settings_mod.Settings(
            database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"],
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
            slack_api_url=self.slack_api_url, playbook_dir=self.playbook_dir)
        runtime = runtime_mod.build_runtime(settings)
        try:
            return bool(runtime.app.process_before_response)
        finally:
            runtime.close()

    def stop(self) -> None:
        children = [child for child in (self.worker, self.web) if child is not None]
        for child in children:  # both shut down at once
            child.terminate()
        for child in children:
            child.stop()
        self.engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


# driving jobs end to end ---------------------------------------------------------------------

# The job message's first section starts with the status emoji (slackui.jobs.STATUS_EMOJI):
# succeeded, failed, cancelled.
FINAL_MARKS = (":white_check_mark:", ":x:", ":no_entry_sign:")


def headline(params: dict[str, Any]) -> str:
    """The text of the first block of a chat.update / chat.postMessage call."""
    blocks = params.get("blocks") or []
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ""
    if not blocks or not isinstance(blocks[0], dict):
        return ""
    text = blocks[0].get("text") or {}
    return str(text.get("text", "")) if isinstance(text, dict) else ""


@dataclass
class JobRun:
    """One job driven from the slash command to its final Slack update."""

    playbook: str
    channel: str
    seconds: float  # signed command sent -> final chat.update seen by FakeSlack
    job_pk: int
    job_uuid: str
    status: str
    calls: list[Any] = field(default_factory=list)  # FakeSlack calls while it ran
    # where the time went, in seconds (wall clock against the job's own timestamps)
    phases: dict[str, float] = field(default_factory=dict)

    def calls_by_method(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.calls:
            counts[call.method] = counts.get(call.method, 0) + 1
        return counts


class JobDriver:
    """Sends `/run-playbook <name> local` as Slack would and waits for the job's ending.

    The ending is the `chat.update` of the job's channel message that shows it succeeded
    (or failed / was cancelled) — the moment a user in Slack sees the result.
    """

    def __init__(self, stack: ProductStack, fake: Any) -> None:
        from bot.fake_slack import SlackSender

        self.stack = stack
        self.fake = fake
        self.sender = SlackSender(f"http://127.0.0.1:{stack.web_port}/slack/events",
                                  SIGNING_SECRET, fake)
        self._channels = itertools.count(1)
        self._lock = threading.Lock()
        self._watch: dict[str, tuple[threading.Event, list[float]]] = {}
        fake.subscribe(self._on_call)

    def _on_call(self, call: Any) -> None:
        if call.method != "chat.update":
            return
        channel = call.params.get("channel")
        with self._lock:
            watched = self._watch.get(channel)
        if watched is None:
            return
        if headline(call.params).startswith(FINAL_MARKS):
            watched[1].append(time.perf_counter())
            watched[1].append(time.time())
            watched[0].set()

    def run(self, playbook: str, *, timeout: float = 300) -> JobRun:
        """Run one job to its end; the calls FakeSlack received in the meantime."""
        channel = f"C_BENCH{next(self._channels)}"
        done = threading.Event()
        ended_at: list[float] = []
        with self._lock:
            self._watch[channel] = (done, ended_at)
        first_call = len(self.fake.calls)
        sent_wall = time.time()
        started = time.perf_counter()
        response = self.sender.command("/run-playbook", f"{playbook} {SERVER}", user=OPERATOR,
                                       channel=channel)
        if response.status != 200:
            raise RuntimeError(f"/run-playbook answered {response.status}: {response.body}")
        if not done.wait(timeout):
            raise RuntimeError(f"no final update for {playbook} within {timeout:.0f}s; "
                               f"worker log:\n{self.stack.worker.tail() if self.stack.worker else ''}")
        seconds = ended_at[0] - started
        with self._lock:
            del self._watch[channel]
        with self.stack.session_factory() as session:
            job = session.scalars(select(Job).where(Job.slack_channel_id == channel)).one()
            status = job.status.value
            pk, uuid = job.id, job.job_id
            phases = _phases(sent_wall, ended_at[1], job)
        time.sleep(0.2)  # calls still in flight after the final update are counted too
        calls = list(self.fake.calls[first_call:])
        return JobRun(playbook=playbook, channel=channel, seconds=seconds, job_pk=pk,
                      job_uuid=uuid, status=status, calls=calls, phases=phases)


def _phases(sent: float, final_update: float, job: Job) -> dict[str, float]:
    """Command sent → job row created → claimed by the worker → playbook done → final update."""
    marks = [sent, job.created_at.timestamp(),
             job.started_at.timestamp() if job.started_at else None,
             job.completed_at.timestamp() if job.completed_at else None, final_update]
    names = ("to_job_row_s", "queued_s", "running_s", "to_final_update_s")
    return {name: later - earlier for name, earlier, later in zip(names, marks[:-1], marks[1:],
                                                                  strict=True)
            if earlier is not None and later is not None}
