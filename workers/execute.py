"""One job from claim to ending: what the `run_job` actor does, step by step.

1. Claim the job (`core.execution.try_claim`). Just before, an approved job whose request
   changed since its approval (the playbook re-synced with a new hash, the server
   re-pointed: `core.request_digest`) is cancelled, "Approval void: …", never run. A
   duplicate delivery finds it claimed and
   stops here. If another job runs on the same server, the job stays pending, its message
   says "waiting for <server>", and it is sent again after `server_wait_delay` seconds.
2. Build the run: the registered playbook, verified unchanged on disk; the inventory from
   the server row; extra vars; secret vars from `PLAYBOT_VAR_<NAME>`. A refusal ends the
   job `failed` with the reason (logged as its only output line).
3. Run it with a heartbeat thread (marks the job alive, learns about cancel requests and
   about the job having been reaped, and renews the run's lease after each heartbeat: a
   worker that stops heart-beating has its playbook stopped by the run's guard before the
   reaper frees its servers), a `LogSink` (job_logs) and a `JobNotifier` (Slack,
   paced through Redis across worker processes when Redis is configured).
4. End it: `success`, `failed` (error_message names task, host and message; an incident
   ticket is opened and posted in the thread) or `cancelled`.

A **preview** run (the check-mode run of a production request, linked on its approval
ticket: `core.jobs`, `core.previews`) runs the same way but has no notifier: it posts no
message of its own, and opens no incident ticket when it fails. When it ends, the approval
card is redrawn with its summary and its stored output uploaded in the card's thread
(`workers.notifier.preview_finished`).

A SIGTERM to the worker (see `workers.main`) lets running playbooks finish for
`shutdown_grace` seconds, then stops them: such a job ends `failed` ("interrupted: the worker
shut down"), never re-run, since it may have done part of its work.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from core import execution, previews, request_digest
from core.errors import InvalidInput, InvalidVars, PlaybotError
from core.extra_vars import forbidden_reason
from core.jobs import attach_message
from core.playbook_files import verify_unchanged
from core.progress import RunProgress
from core.run_inventory import build_run_inventory
from core.ssh_keys import check_key_file
from core.tickets import attach_message as attach_tickets
from db.clock import now as db_time
from db.models import Job, JobLog, JobStatus, LogLevel, Server, Ticket
from db.retry import is_transient
from workers.config import WorkerConfig
from workers.lease import Lease
from workers.logsink import LogSink, LogWriteError, Redactor, event_time
from workers.middleware import engine_for, session_factory
from workers.notifier import Limits, RunNotifier, make_client, preview_finished, redraw_run
from workers.pacing import pacer_for
from workers.runner import RunResult, RunSpec, run_playbook
from workers.ssh import MAX_CONTROL_DIR, SshOptions, ansible_ssh_env, explain_unreachable

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 5
ENDING_ATTEMPTS = 12  # about a minute of backoff: a database restart, not a long outage
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

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
    """Claim and run the run of `job_id` (every pending job of its launch, in one Ansible
    run); return how the named job ended (None if this call did not run it).

    defer: sends the job again after a delay (seconds) when a server is busy, or when the
    claim kept failing on a transient database error (never dead-lettered); it returns
    False when it could not send (the clock then sends the job: its receipt is recorded).
    """
    factory = session_factory(config.database_url)
    own_session = session is None
    session = session or factory()
    try:
        _note_received(session, job_id)
        if SHUTDOWN.is_set():  # shutting down: leave the job pending for another worker
            log.info("shutting down: job %s is left pending", job_id)
            _defer(defer, session, job_id, config.server_wait_delay)
            return None
        _void_changed(session, job_id, config, factory)
        try:
            claim = _claim_with_retries(session, job_id)
        except SQLAlchemyError as exc:
            log.warning("job %s: the claim kept failing (%s); sent again later", job_id, exc)
            _defer(defer, session, job_id, config.server_wait_delay)
            return None
        if claim.waiting:
            if claim.busy_with:  # else a concurrent claim took a server: just try again
                _wait_for_server(config, claim, job_id, session)
            _defer(defer, session, job_id, config.server_wait_delay)
            return None
        if claim.awaiting_approval:
            log.info("job %s: its run waits for an approval; the decision starts it", job_id)
            return None
        if not claim.jobs:
            log.info("job %s is %s: nothing to run", job_id,
                     claim.status.value if claim.status else "unknown")
            return None
        _forget_wait(job_id)
        statuses = _Run(config, list(claim.jobs), session, factory, notifier_limits).execute()
        return statuses.get(job_id) if statuses else None
    finally:
        if own_session:
            session.close()


def _note_received(session: Session, job_id: str) -> None:
    """Record, before the claim, that this delivery arrived (`execution.note_received`): the
    clock then knows the message is not waiting in the queue any more."""
    try:
        execution.note_received(session, job_id)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("job %s: could not record the message's receipt: %s", job_id, exc)


def _void_changed(session: Session, job_id: str, config: WorkerConfig,
                  factory: sessionmaker[Session]) -> None:
    """Before the claim: cancel the run's approved jobs whose request changed since the
    approval (`core.request_digest.void_changed`: "Approval void: the playbook changed since
    it was approved"), committed, and redraw the run message. A database error leaves the
    jobs as they are: the claim then fails on the same error and is tried again later."""
    try:
        voided = request_digest.void_changed(session, job_id)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("job %s: could not check its approval's digest: %s", job_id, exc)
        return
    if not voided:
        return
    for job in voided:
        log.warning("job %s: %s", job.job_id, job.error_message)
    client = _client(config)
    if client is not None:
        redraw_run(client, factory, voided[0].run_id)


def _defer(defer: Callable[[str, float], object] | None, session: Session, job_id: str,
           delay: float) -> None:
    """Send the job again after `delay` and record the new message's sending (database
    time), so the clock neither resends it nor takes it for lost."""
    if defer is None or defer(job_id, delay) is False:
        return
    try:
        execution.note_resent(session, job_id)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("job %s: could not record its deferral: %s", job_id, exc)


def _transient(exc: BaseException) -> bool:
    """Database errors worth trying again (`db.retry.is_transient`)."""
    return is_transient(exc)


def _claim_with_retries(session: Session, job_id: str) -> execution.Claim:
    """`execution.try_claim`, committed; a transient database error before the commit is
    rolled back and tried again with backoff (tenacity: a well-kept retry library, so the
    policy is declared, not hand-written)."""
    for attempt in Retrying(retry=retry_if_exception(_transient), reraise=True,
                            stop=stop_after_attempt(CLAIM_ATTEMPTS),
                            wait=wait_random_exponential(multiplier=0.05, max=2.0),
                            before_sleep=lambda state: log.info(
                                "claim of job %s: transient database error (%s), trying again",
                                job_id, state.outcome.exception() if state.outcome else "?")):
        with attempt:
            try:
                claim = execution.try_claim(session, job_id)
                session.commit()
            except SQLAlchemyError:
                session.rollback()
                raise
    return claim


class _Run:
    """The run of the claimed jobs of one launch: one ansible-playbook over their hosts."""

    def __init__(self, config: WorkerConfig, jobs: list[Job], session: Session,
                 factory: sessionmaker[Session], limits: Limits | None) -> None:
        self.config = config
        self.jobs = jobs
        self.job = jobs[0]
        self.job_id = jobs[0].job_id
        self.job_ids = [j.job_id for j in jobs]
        self.by_host = {j.server.hostname: j for j in jobs}
        self.session = session
        self.factory = factory
        self.ssh = SshOptions(known_hosts_file=Path(config.known_hosts_file).resolve(),
                              accept_new_host_keys=config.ssh_accept_new_host_keys,
                              connect_timeout=config.ssh_connect_timeout)
        client = _client(config)
        self.client = client
        # a preview run posts nothing of its own: its result goes on the approval card
        self.previewed = previews.previewed_tickets(session, [j.id for j in jobs])
        self.notifier = None if client is None or self.previewed else RunNotifier(
            client, jobs, session_factory=factory, jobs_channel=config.jobs_channel,
            limits=limits,
            pacer=pacer_for(config.redis_url), on_message_posted=self._message_posted,
            on_tickets_posted=self._tickets_posted)
        self.ticket_ids: list[str] = []
        # renewed by each heartbeat written: a stalled worker's guard stops the playbook
        self.lease = Lease(config.run_lease)
        self.monitor = _Heartbeat(factory, self.job_ids, config.heartbeat_interval,
                                  on_cancel=self._cancel_seen, on_beat=self.lease.renew)
        self.progress = RunProgress()
        # the database's clock minus this machine's: event times are stored in database time
        self.clock_offset = db_time(session) - datetime.now(UTC)
        self.taking_part: list[int] = [j.id for j in jobs]
        self.refused: dict[str, str] = {}  # host -> why it was not run

    def execute(self) -> dict[str, JobStatus | None]:
        self.monitor.start()
        sink: LogSink | None = None
        try:
            secrets: dict[str, str] = {}
            try:
                spec, secrets, self.refused = build_run_spec(self.jobs, self.config,
                                                             self.session, self.ssh)
            except PlaybotError as exc:
                sink = self._sink(Redactor(secrets.values()))
                return self._refuse(sink, str(exc))
            sink = self._sink(Redactor(secrets.values()))
            for host, why in self.refused.items():
                self._write(sink, [(f"Refused: {why}", LogLevel.ERROR.value)], host)
            if not spec.host_names:
                self._close_sink(sink)
                return self._end_all(sink, None)
            self.taking_part = [self.by_host[h].id for h in spec.host_names]
            result = run_playbook(spec, on_event=self._on_event(sink),
                                  should_cancel=self._should_cancel,
                                  on_progress=self._on_progress, lease=self.lease)
            self._close_sink(sink)
            return self._end_all(sink, result, Redactor(secrets.values()))
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

    def _write(self, sink: LogSink, lines: list[tuple[str, str]], host: str | None,
               at: Any = None) -> None:
        """Store lines in their host's job (every job taking part when no host), and hand
        them to the thread once."""
        if host is not None and host in self.by_host:
            out = sink.write_lines(lines, at=at, jobs=[self.by_host[host].id])
        else:
            out = sink.write_lines(lines, at=at, jobs=self.taking_part)
            host = None
        if out and self.notifier is not None:
            self.notifier.lines(out, host=host)

    def _on_event(self, sink: LogSink) -> Callable[[dict[str, Any]], None]:
        def on_event(event: dict[str, Any]) -> None:
            lines = sink.event_lines(event)  # redacted whole, then split
            if not lines:
                return
            at = event_time(event)
            kind = str(event.get("event") or "")
            host = str((event.get("event_data") or {}).get("host") or "") or None
            if kind == "playbook_on_stats":
                self._write_recap(sink, lines, at)
            elif kind.startswith("runner_") and host is not None:
                self._write(sink, lines, host, at)
            else:
                self._write(sink, lines, None, at)

        return on_event

    def _write_recap(self, sink: LogSink, lines: list[tuple[str, str]], at: Any) -> None:
        """PLAY RECAP: each host's line to its own job, the rest to every job."""
        shared: list[tuple[str, str]] = []
        for text, level in lines:
            name = text.split(" ", 1)[0] if text and not text.startswith(" ") else ""
            if name in self.by_host and " : " in text:
                if shared:
                    self._write(sink, shared, None, at)
                    shared = []
                self._write(sink, [(text, level)], name, at)
            else:
                shared.append((text, level))
        if shared:
            self._write(sink, shared, None, at)

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

    def _refuse(self, sink: LogSink, reason: str) -> dict[str, JobStatus | None]:
        self._write(sink, [(f"Refused: {reason}", LogLevel.ERROR.value)], None)
        self._close_sink(sink)
        self.refused = {host: reason for host in self.by_host}
        return self._end_all(sink, None)

    def _ending(self, job: Job, result: RunResult | None,
                redact: Redactor) -> tuple[JobStatus | None, str | None]:
        """How one job ends, by its own host's result."""
        host = job.server.hostname
        if host in self.refused:
            return JobStatus.failed, f"Refused: {self.refused[host]}"
        if result is None:
            return JobStatus.failed, "Refused"
        if self.monitor.lost:
            return None, None
        if result.status == "cancelled":
            if self.monitor.cancel_requested:
                return JobStatus.cancelled, "cancelled on request (the whole run was stopped)"
            return JobStatus.failed, ("interrupted: the worker shut down during the run; the "
                                      "playbook was stopped part-way and was not run again")
        if result.status == "timeout" or not result.final_stats:
            if result.status == "success" and len(self.jobs) == 1:
                return JobStatus.success, None
            return JobStatus.failed, redact(result.error_message or "failed")
        outcome = result.hosts.get(host)
        if outcome is not None and outcome.failure is not None:
            failure = outcome.failure
            if failure.unreachable:
                common = (job.server.host_vars or {}).get("ansible_ssh_common_args")
                return JobStatus.failed, redact(explain_unreachable(
                    host, job.server.ip_address, job.server.ssh_port,
                    failure.detail or failure.message, self.ssh,
                    ssh_common_args=common if isinstance(common, str) else None))
            return JobStatus.failed, redact(failure.describe())
        if outcome is None or not outcome.processed:
            patterns = ", ".join(f"'{p}'" for p in result.no_hosts_matched) or "its plays'"
            targets = ", ".join(sorted(self.by_host))
            return JobStatus.failed, (f"No play ran on {host}: the hosts: pattern {patterns} "
                                      f"matches none of the run's targets ({targets})"[:1000])
        if result.status == "success" or len(self.jobs) > 1:
            return JobStatus.success, None
        return JobStatus.failed, redact(result.error_message or "failed")

    def _end_all(self, sink: LogSink, result: RunResult | None,
                 redact: Redactor | None = None) -> dict[str, JobStatus | None]:
        redact = redact or Redactor()
        if result is not None:
            self.progress = result.progress
        # The run is over and its outcome known: a transient database error while recording
        # it (a restarted server dropped this session's connection) is rolled back and the
        # endings are written again, rather than the jobs being failed for it.
        for attempt in Retrying(retry=retry_if_exception(_transient), reraise=True,
                                stop=stop_after_attempt(ENDING_ATTEMPTS),
                                wait=wait_random_exponential(multiplier=0.2, max=5.0),
                                before_sleep=lambda state: log.info(
                                    "job %s: transient database error while recording the "
                                    "end (%s), trying again", self.job_id,
                                    state.outcome.exception() if state.outcome else "?")):
            with attempt:
                try:
                    statuses, tickets = self._record_endings(result, redact)
                    self.session.commit()
                except SQLAlchemyError:
                    self.session.rollback()
                    raise
        if self.monitor.lost:
            log.warning("run of job %s was ended elsewhere (reaped) while it ran", self.job_id)
        self.session.expire_all()
        finals = list(self.session.execute(
            select(Job).where(Job.job_id.in_(self.job_ids)).order_by(Job.id)).unique().scalars())
        pks = [j.id for j in self.jobs]
        multi = len(pks) > 1
        if self.previewed and self.client is not None:
            preview_finished(self.client, self.factory, self.previewed,
                             full_log=lambda: read_run_log(self.factory, pks, multi=multi))
        if self.notifier is not None:
            self.notifier.finish(finals, tickets=tickets,
                                 full_log=lambda: read_run_log(self.factory, pks, multi=multi),
                                 total_lines=sink.total_lines)
        return statuses

    def _record_endings(self, result: RunResult | None, redact: Redactor
                        ) -> tuple[dict[str, JobStatus | None], list[Ticket]]:
        """End each job by its host's result (uncommitted); its status (None: ended
        elsewhere) and the incident tickets opened."""
        statuses: dict[str, JobStatus | None] = {}
        tickets: list[Ticket] = []
        for job in self.jobs:
            status, error = self._ending(job, result, redact)
            outcome = result.hosts.get(job.server.hostname) if result else None
            recap = _host_recap(result, job.server.hostname) if result else None
            if status is None:
                statuses[job.job_id] = None
                continue
            ended = execution.finish(
                self.session, job.job_id, status, error_message=error, recap=recap,
                now=_moment(outcome.last_at, self.clock_offset)
                if outcome and len(self.jobs) > 1 else None,
                started_at=_moment(outcome.first_at, self.clock_offset)
                if outcome and len(self.jobs) > 1
                else None)
            statuses[job.job_id] = status if ended is not None else None
            if ended is not None and status == JobStatus.failed and not self.previewed:
                ticket = execution.incident_for(self.session, ended)
                if ticket is not None:
                    tickets.append(ticket)
        self.ticket_ids = [t.ticket_id for t in tickets]
        return statuses, tickets

    def _crashed(self, exc: BaseException) -> None:
        """A bug or lost database: end the jobs failed rather than leave them to the reaper."""
        try:
            self.session.rollback()
            for job_id in self.job_ids:
                # a database error says what the server said, not the statement and values
                said = getattr(exc, "orig", None) or exc
                execution.finish(self.session, job_id, JobStatus.failed,
                                 error_message=f"internal error in the worker: "
                                               f"{type(exc).__name__}: {said}"[:1000])
            self.session.commit()
        except SQLAlchemyError:
            log.exception("job %s: could not record the crash; the reaper will end it",
                          self.job_id)

    def _cancel_seen(self) -> None:
        if self.notifier is not None:
            self.notifier.mark_cancelling()

    def _message_posted(self, channel: str, ts: str) -> None:
        with self.factory.begin() as session:
            for job_id in self.job_ids:
                attach_message(session, job_id, channel, ts)

    def _tickets_posted(self, channel: str, ts: str) -> None:
        with self.factory.begin() as session:
            attach_tickets(session, self.ticket_ids, channel, ts)


def _moment(created: str | None, offset: timedelta = timedelta(0)) -> datetime | None:
    """An event's `created` stamp (this machine's clock) as an aware UTC datetime in
    database time (`offset`: the database's clock minus this machine's)."""
    if not created:
        return None
    return event_time({"created": created}).replace(tzinfo=UTC) + offset


def _host_recap(result: RunResult, host: str) -> dict[str, Any]:
    """The recap stored on one job: its own host's counters."""
    recap = result.recap
    hosts = recap.get("hosts") or {}
    if host in hosts:
        return {"hosts": {host: hosts[host]}, "tasks": recap.get("tasks", 0)}
    return {"hosts": {}, "tasks": recap.get("tasks", 0)}


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
    return read_run_log(factory, [job_pk], multi=False)


def read_run_log(factory: sessionmaker[Session], job_pks: list[int], *, multi: bool) -> str:
    """The stored output of a run's jobs: one job's lines as they are; several jobs host
    after host, each line marked with its host."""
    with factory() as session:
        if not multi:
            rows = session.execute(
                select(JobLog.content).where(JobLog.job_id == job_pks[0])
                .order_by(JobLog.line_number)).scalars()
            return "\n".join(rows) + "\n"
        names = dict(session.execute(
            select(Job.id, Server.hostname).join(Server, Server.id == Job.server_id)
            .where(Job.id.in_(job_pks))).all())
        parts: list[str] = []
        for pk in job_pks:
            rows = session.execute(
                select(JobLog.content).where(JobLog.job_id == pk)
                .order_by(JobLog.line_number)).scalars()
            parts.extend(f"{names.get(pk, '?')} │ {line}" for line in rows)
        return "\n".join(parts) + "\n"


# building the run ------------------------------------------------------------------------


def build_run_spec(jobs: list[Job], config: WorkerConfig, session: Session,
                   ssh: SshOptions) -> tuple[RunSpec, dict[str, str], dict[str, str]]:
    """The RunSpec of a run's jobs, its secret values (for redaction), and the hosts that
    cannot run with why (deactivated server, a bad SSH key file): those jobs fail, the
    others run.

    Raises PlaybookChanged, InvalidVars, PlaybotError for what refuses the whole run (the
    jobs of one run share playbook, vars and check mode).
    """
    first = jobs[0]
    playbook = first.playbook
    if not playbook.is_active:
        raise PlaybotError(f"playbook '{playbook.name}' is deactivated")
    path = verify_unchanged(playbook, config.playbook_dir)
    secrets = _secret_values(playbook)
    extra = _chat_vars(first.extra_vars or {}, secrets)
    refused: dict[str, str] = {}
    servers = []
    for job in jobs:
        server = job.server
        if not server.is_active:
            refused[server.hostname] = f"server '{server.hostname}' is deactivated"
            continue
        if server.connection != "local" and server.ssh_key_path:
            try:
                check_key_file(server.ssh_key_path)
            except InvalidInput as exc:
                refused[server.hostname] = str(exc)
                continue
        servers.append(server)
    built = build_run_inventory(session, servers, local_python=sys.executable)
    control = _control_dir(Path(config.runtime_dir))
    options = SshOptions(known_hosts_file=ssh.known_hosts_file,
                         accept_new_host_keys=ssh.accept_new_host_keys,
                         connect_timeout=ssh.connect_timeout, control_dir=control)
    spec = RunSpec(
        job_id=first.run_id if len(jobs) > 1 else first.job_id,
        playbook_path=path,
        host=None,
        runtime_dir=config.runtime_dir.resolve(),
        extra_vars=extra,
        secret_vars=secrets,
        check_mode=first.check_mode,
        timeout=config.timeout_for(playbook.timeout_seconds),
        cancel_poll=config.cancel_poll_interval,
        hosts=tuple(s.hostname for s in servers),
        inventory_data=built.data,
        vault_files=built.vault_files,
        forks=config.forks,
        extra_env=ansible_ssh_env(options),
        vault_password_file=(Path(config.vault_password_file)
                             if config.vault_password_file else None),
    )
    return spec, secrets, refused


def _chat_vars(extra_vars: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """The job's extra vars, less those a secret fills; InvalidVars for a name chat may
    never set (checked again here: the worker trusts no row)."""
    extra = {k: v for k, v in extra_vars.items() if k not in secrets}
    for name in extra:
        if not _VAR_NAME.match(name) or forbidden_reason(name):
            raise InvalidVars(f"variable '{name}' may not be set from chat")
    return extra


def _control_dir(runtime_dir: Path) -> Path:
    """Where ssh's multiplexing sockets live: under the runtime dir, or, when that path is
    too long for unix sockets, a private directory of this user in the temp dir."""
    control = runtime_dir.resolve() / "cp"
    if len(str(control)) <= MAX_CONTROL_DIR:
        return control
    short = Path(tempfile.gettempdir()) / f"playbot-cp-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    if short.stat().st_uid != os.getuid() or short.stat().st_mode & 0o077:
        raise PlaybotError(f"{short} is not a private directory of this user; remove it or "
                           "give PLAYBOT_RUNTIME_DIR a shorter path")
    return short


def _secret_values(playbook: Any) -> dict[str, str]:
    """Values of the playbook's `secret: true` variables from the worker's environment."""
    secrets: dict[str, str] = {}
    for name, spec in (playbook.variables or {}).items():
        if not (isinstance(spec, dict) and spec.get("secret")):
            continue
        value = os.environ.get(f"PLAYBOT_VAR_{name.upper()}")
        if value is None:
            if spec.get("required"):
                raise PlaybotError(f"secret variable '{name}' is required but "
                                   f"PLAYBOT_VAR_{name.upper()} is not set on the worker")
            continue
        secrets[name] = value
    return secrets


# heartbeat -------------------------------------------------------------------------------


class _Heartbeat:
    """Marks the job alive every `interval` seconds; learns about cancel and reaping.

    on_beat: called with the time.monotonic() at which a heartbeat that found the jobs
    still running was sent (it renews the run's lease).
    """

    def __init__(self, factory: sessionmaker[Session], job_ids: str | list[str],
                 interval: float, *, on_cancel: Callable[[], None] | None = None,
                 on_beat: Callable[[float], None] | None = None) -> None:
        self._factory = factory
        self._on_cancel = on_cancel
        self._on_beat = on_beat
        self._job_ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        job_id = self._job_ids[0]
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
                        sent = time.monotonic()
                        pulse = execution.heartbeat(session, self._job_ids)
                        session.commit()
                        last_beat = time.monotonic()
                        self.lost = not pulse.running
                        self.cancel_requested = pulse.cancel_requested
                        if pulse.running and self._on_beat is not None:
                            self._on_beat(sent)
                    else:
                        self.cancel_requested = execution.cancel_requested(
                            session, self._job_ids)
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
    hosts = sorted({b.server.hostname for b in busy})
    seen = ",".join(sorted(b.job_id for b in busy))
    with _waits_lock:
        if _announced.get(job_id) == seen:
            log.debug("job %s still waits for %s", job_id, ", ".join(hosts))
            return
        log.info("job %s waits: %s running on %s", job_id,
                 ", ".join(b.job_id for b in busy), ", ".join(hosts))
        _announced[job_id] = seen
        while len(_announced) > 1000:
            _announced.popitem(last=False)
    client = _client(config)
    if client is None:
        return
    job = session.execute(select(Job).where(Job.job_id == job_id)).unique().scalar_one()
    if job.status != JobStatus.pending or not job.slack_message_ts:
        return
    # drawn by the message's owner from the run's state then: a note that arrives after
    # the run started (or was cancelled) is not drawn
    _announcer.submit(redraw_run, client, session_factory(config.database_url), job.run_id,
                      waiting_for=hosts)


def _forget_wait(job_id: str) -> None:
    with _waits_lock:
        _announced.pop(job_id, None)

