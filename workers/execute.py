"""One job from claim to ending: what the `run_job` actor does, step by step.

1. Claim the job (`core.execution.try_claim`). A duplicate delivery finds it claimed and
   stops here. If another job runs on the same server, the job stays pending, its message
   says "waiting for <server>", and it is sent again after `server_wait_delay` seconds.
2. Build the run: the registered playbook, verified unchanged on disk; the inventory from
   the server row; extra vars; secret vars from `PLAYBOT_VAR_<NAME>`. A refusal ends the
   job `failed` with the reason (logged as its only output line).
3. Run it with a heartbeat thread (marks the job alive, learns about cancel requests and
   about the job having been reaped), a `LogSink` (job_logs) and a `JobNotifier` (Slack,
   paced through Redis across worker processes when Redis is configured).
4. End it: `success`, `failed` (error_message names task, host and message; an incident
   ticket is opened and posted in the thread) or `cancelled`.

A SIGTERM to the worker (see `workers.main`) lets running playbooks finish for
`shutdown_grace` seconds, then stops them: such a job ends `failed` ("interrupted: the worker
shut down"), never re-run, since it may have done part of its work.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core import execution
from core.errors import InvalidVars, PlaybotError
from core.jobs import attach_message
from core.playbook_files import verify_unchanged
from core.progress import RunProgress
from db.models import Job, JobLog, JobStatus, LogLevel, Ticket
from slackui.job_message import job_message
from slackui.tickets import ticket_message
from workers.config import WorkerConfig
from workers.logsink import LogSink, LogWriteError, Redactor
from workers.middleware import engine_for, session_factory
from workers.notifier import JobNotifier, Limits, make_client, post_update, snapshot
from workers.pacing import pacer_for
from workers.runner import HostSpec, RunResult, RunSpec, run_playbook

log = logging.getLogger(__name__)

_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORBIDDEN_VARS = re.compile(r"^(ansible_|playbook_dir$|inventory_|hostvars$|groups$|"
                             r"group_names$|omit$|environment$|vars$)")

# Graceful shutdown: set by workers.main on SIGTERM; running playbooks get until the deadline.
SHUTDOWN = threading.Event()
_shutdown_deadline = [float("inf")]


def begin_shutdown(grace: float) -> None:
    """Stop running playbooks `grace` seconds from now (they end failed, not re-run)."""
    _shutdown_deadline[0] = time.monotonic() + grace
    SHUTDOWN.set()


def reset_shutdown() -> None:
    """Forget a previous shutdown (a new worker starts in the same process)."""
    SHUTDOWN.clear()
    _shutdown_deadline[0] = float("inf")


def _shutdown_due() -> bool:
    return SHUTDOWN.is_set() and time.monotonic() >= _shutdown_deadline[0]


@cache
def slack_client(token: str, api_url: str) -> WebClient:
    """One WebClient per token and API URL in this process."""
    return make_client(token, api_url)


def _client(config: WorkerConfig) -> WebClient | None:
    return slack_client(config.slack_token, config.slack_api_url) if config.slack_token else None


# the job ---------------------------------------------------------------------------------


def execute_job(job_id: str, config: WorkerConfig, *, session: Session | None = None,
                defer: Callable[[str, float], None] | None = None,
                notifier_limits: Limits | None = None) -> JobStatus | None:
    """Claim and run the job; return how it ended (None if this call did not run it).

    defer: sends the job again after a delay (seconds) when its server is busy.
    """
    if SHUTDOWN.is_set():  # shutting down: leave the job pending for another worker
        log.info("shutting down: job %s is left pending", job_id)
        if defer is not None:
            defer(job_id, config.server_wait_delay)
        return None
    factory = session_factory(config.database_url)
    own_session = session is None
    session = session or factory()
    try:
        claim = execution.try_claim(session, job_id)
        session.commit()
        if claim.waiting:
            _wait_for_server(config, claim, job_id, session)
            if defer is not None:
                defer(job_id, config.server_wait_delay)
            return None
        if claim.job is None:
            log.info("job %s is %s: nothing to run", job_id,
                     claim.status.value if claim.status else "unknown")
            return None
        _forget_wait(job_id)
        return _Run(config, claim.job, session, factory, notifier_limits).execute()
    finally:
        if own_session:
            session.close()


class _Run:
    """The run of one claimed job."""

    def __init__(self, config: WorkerConfig, job: Job, session: Session,
                 factory: sessionmaker[Session], limits: Limits | None) -> None:
        self.config = config
        self.job = job
        self.job_id = job.job_id
        self.session = session
        self.factory = factory
        client = _client(config)
        self.notifier = None if client is None else JobNotifier(
            client, job, jobs_channel=config.jobs_channel, limits=limits,
            pacer=pacer_for(config.redis_url), on_message_posted=self._message_posted,
            on_ticket_posted=self._ticket_posted)
        self.ticket_id: str | None = None
        self.monitor = _Heartbeat(factory, job.job_id, config.heartbeat_interval,
                                  on_cancel=self._cancel_seen)
        self.progress = RunProgress()

    def execute(self) -> JobStatus | None:
        self.monitor.start()
        sink: LogSink | None = None
        try:
            secrets: dict[str, str] = {}
            try:
                spec, secrets = build_spec(self.job, self.config)
            except PlaybotError as exc:
                sink = self._sink(Redactor(secrets.values()))
                return self._refuse(sink, str(exc))
            sink = self._sink(Redactor(secrets.values()))
            result = run_playbook(spec, on_event=self._on_event(sink),
                                  should_cancel=self._should_cancel,
                                  on_progress=self._on_progress)
            self._close_sink(sink)
            return self._end(sink, result, Redactor(secrets.values()))
        except BaseException as exc:
            self._crashed(exc)
            raise
        finally:
            self.monitor.stop()
            if sink is not None and not sink.closed:
                self._close_sink(sink)

    # pieces --------------------------------------------------------------------------------

    def _sink(self, redactor: Redactor) -> LogSink:
        return LogSink(engine_for(self.config.database_url), self.job.id, redactor=redactor,
                       batch_rows=self.config.log_batch_rows,
                       flush_interval=self.config.log_flush_interval)

    def _on_event(self, sink: LogSink) -> Callable[[dict[str, Any]], None]:
        notifier = self.notifier

        def on_event(event: dict[str, Any]) -> None:
            lines = sink.write_event(event)
            if lines and notifier is not None:
                notifier.lines(lines)

        return on_event

    def _on_progress(self, progress: RunProgress) -> None:
        self.progress = progress
        if self.notifier is not None:
            self.notifier.progress(progress)

    def _should_cancel(self) -> bool:
        return self.monitor.cancel_requested or self.monitor.lost or _shutdown_due()

    @staticmethod
    def _close_sink(sink: LogSink) -> None:
        try:
            sink.close()
        except LogWriteError as exc:
            log.error("%s", exc)

    def _refuse(self, sink: LogSink, reason: str) -> JobStatus | None:
        lines = sink.write_lines([(f"Refused: {reason}", LogLevel.ERROR.value)])
        if self.notifier is not None:
            self.notifier.lines(lines)
        self._close_sink(sink)
        return self._finish(JobStatus.failed, f"Refused: {reason}", None, sink)

    def _end(self, sink: LogSink, result: RunResult, redact: Redactor) -> JobStatus | None:
        self.progress = result.progress
        if self.monitor.lost:
            log.warning("job %s was ended elsewhere (reaped) while it ran", self.job_id)
            return self._finish(None, None, result.recap, sink)
        if result.status == "success":
            return self._finish(JobStatus.success, None, result.recap, sink)
        if result.status == "cancelled":
            if self.monitor.cancel_requested:
                return self._finish(JobStatus.cancelled, "cancelled on request", result.recap,
                                    sink)
            return self._finish(JobStatus.failed,
                                "interrupted: the worker shut down during the run; the "
                                "playbook was stopped part-way and was not run again",
                                result.recap, sink)
        return self._finish(JobStatus.failed, redact(result.error_message or "failed"),
                            result.recap, sink)

    def _finish(self, status: JobStatus | None, error: str | None,
                recap: dict[str, Any] | None, sink: LogSink) -> JobStatus | None:
        ticket: Ticket | None = None
        job: Job | None = None
        if status is not None:
            job = execution.finish(self.session, self.job_id, status, error_message=error,
                                   recap=recap)
            if job is not None and status == JobStatus.failed:
                ticket = execution.incident_for(self.session, job)
                self.ticket_id = ticket.ticket_id if ticket else None
            self.session.commit()
        if job is None:  # ended elsewhere: show what the database says
            self.session.expire_all()
            job = self.session.execute(
                select(Job).where(Job.job_id == self.job_id)).unique().scalar_one()
            status = None
        if self.notifier is not None:
            job_pk = self.job.id
            self.notifier.finish(job, ticket=ticket_message(ticket) if ticket else None,
                                 full_log=lambda: read_log(self.factory, job_pk),
                                 total_lines=sink.line_count)
        return status

    def _crashed(self, exc: BaseException) -> None:
        """A bug or lost database: end the job failed rather than leave it to the reaper."""
        try:
            self.session.rollback()
            execution.finish(self.session, self.job_id, JobStatus.failed,
                             error_message=f"internal error in the worker: "
                                           f"{type(exc).__name__}: {exc}"[:1000])
            self.session.commit()
        except SQLAlchemyError:
            log.exception("job %s: could not record the crash; the reaper will end it",
                          self.job_id)

    def _cancel_seen(self) -> None:
        if self.notifier is not None:
            self.notifier.mark_cancelling()

    def _message_posted(self, channel: str, ts: str) -> None:
        with self.factory.begin() as session:
            attach_message(session, self.job_id, channel, ts)

    def _ticket_posted(self, channel: str, ts: str) -> None:
        record_ticket_message(self.factory, self.ticket_id, channel, ts)


def record_ticket_message(factory: sessionmaker[Session], ticket_id: str | None,
                          channel: str, ts: str) -> None:
    """Remember where a ticket was posted (so its buttons can update it later)."""
    if ticket_id is None:
        return
    with factory.begin() as session:
        session.execute(update(Ticket).where(Ticket.ticket_id == ticket_id)
                        .values(slack_channel_id=channel, slack_message_ts=ts))


def read_log(factory: sessionmaker[Session], job_pk: int) -> str:
    """The job's whole stored output, one line per row, in order."""
    with factory() as session:
        rows = session.execute(
            select(JobLog.content).where(JobLog.job_id == job_pk).order_by(JobLog.line_number)
        ).scalars()
        return "\n".join(rows) + "\n"


# building the run ------------------------------------------------------------------------


def build_spec(job: Job, config: WorkerConfig) -> tuple[RunSpec, dict[str, str]]:
    """The RunSpec of a job, and its secret values (for redaction).

    Raises PlaybookChanged (file edited, moved or outside the playbook dir), InvalidVars
    (a forbidden variable name), PlaybotError (deactivated playbook or server, a required
    secret missing from the worker's environment).
    """
    playbook, server = job.playbook, job.server
    if not playbook.is_active:
        raise PlaybotError(f"playbook '{playbook.name}' is deactivated")
    if not server.is_active:
        raise PlaybotError(f"server '{server.hostname}' is deactivated")
    path = verify_unchanged(playbook, config.playbook_dir)
    declared = playbook.variables or {}
    secrets: dict[str, str] = {}
    for name, spec in declared.items():
        if not (isinstance(spec, dict) and spec.get("secret")):
            continue
        value = os.environ.get(f"PLAYBOT_VAR_{name.upper()}")
        if value is None:
            if spec.get("required"):
                raise PlaybotError(f"secret variable '{name}' is required but "
                                   f"PLAYBOT_VAR_{name.upper()} is not set on the worker")
            continue
        secrets[name] = value
    extra = {k: v for k, v in (job.extra_vars or {}).items() if k not in secrets}
    for name in extra:
        if not _VAR_NAME.match(name) or _FORBIDDEN_VARS.match(name):
            raise InvalidVars(f"variable '{name}' may not be set from chat")
    host = HostSpec(
        name=server.hostname,
        address=server.ip_address or None,
        port=server.ssh_port,
        user=server.ssh_user,
        key_path=server.ssh_key_path,
        local=server.connection == "local",
        groups=tuple([*(server.tags or []), server.environment.value]),
    )
    spec = RunSpec(
        job_id=job.job_id,
        playbook_path=path,
        host=host,
        runtime_dir=config.runtime_dir.resolve(),
        extra_vars=extra,
        secret_vars=secrets,
        check_mode=job.check_mode,
        timeout=config.timeout_for(playbook.timeout_seconds),
        cancel_poll=config.cancel_poll_interval,
    )
    return spec, secrets


# heartbeat -------------------------------------------------------------------------------


class _Heartbeat:
    """Marks the job alive every `interval` seconds; learns about cancel and reaping."""

    def __init__(self, factory: sessionmaker[Session], job_id: str, interval: float, *,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self._factory = factory
        self._on_cancel = on_cancel
        self._job_id = job_id
        self._interval = interval
        self._stop = threading.Event()
        self.cancel_requested = False
        self.lost = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"heartbeat-{job_id[:8]}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        # cancel requests are checked more often than the heartbeat is written
        poll = min(self._interval, 1.0)
        last_beat = time.monotonic()
        while not self._stop.wait(poll):
            try:
                with self._factory() as session:
                    if time.monotonic() - last_beat >= self._interval:
                        pulse = execution.heartbeat(session, self._job_id)
                        session.commit()
                        last_beat = time.monotonic()
                        self.lost = not pulse.running
                        self.cancel_requested = pulse.cancel_requested
                    else:
                        self.cancel_requested = bool(session.execute(
                            select(Job.cancel_requested).where(Job.job_id == self._job_id)
                        ).scalar_one_or_none())
            except SQLAlchemyError as exc:
                log.warning("heartbeat of job %s failed: %s", self._job_id, exc)
                continue
            if self.cancel_requested and self._on_cancel is not None:
                on_cancel, self._on_cancel = self._on_cancel, None
                on_cancel()


# waiting for a busy server ---------------------------------------------------------------

_waits_lock = threading.Lock()
_announced: OrderedDict[str, str] = OrderedDict()  # job id -> the job it waits for
_announcer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playbot-wait-note")


def _wait_for_server(config: WorkerConfig, claim: execution.Claim, job_id: str,
                     session: Session) -> None:
    busy = claim.busy_with
    assert busy is not None
    with _waits_lock:
        if _announced.get(job_id) == busy.job_id:
            log.debug("job %s still waits for %s", job_id, busy.server.hostname)
            return
        log.info("job %s waits: job %s is running on %s", job_id, busy.job_id,
                 busy.server.hostname)
        _announced[job_id] = busy.job_id
        while len(_announced) > 1000:
            _announced.popitem(last=False)
    client = _client(config)
    if client is None:
        return
    job = session.execute(select(Job).where(Job.job_id == job_id)).unique().scalar_one()
    if job.status != JobStatus.pending or not job.slack_message_ts:
        return
    copy = snapshot(job)
    message = job_message(copy, waiting_for=busy.server.hostname)
    _announcer.submit(post_update, client, copy, message)


def _forget_wait(job_id: str) -> None:
    with _waits_lock:
        _announced.pop(job_id, None)

