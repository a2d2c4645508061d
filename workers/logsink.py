"""The log path of a run: Ansible event → lines → redaction → batched INSERT into job_logs.

What a "line" is: one line of the run's standard output as ansible-playbook prints it —
each event's `stdout` split on newlines (blank lines included; an event without stdout has
no lines). Each line becomes one `job_logs` row; `line_number` runs 1, 2, 3… without gaps.

Level of a line: ERROR for the output of a failed task (not ignored) or an unreachable
host and for "[ERROR]" lines; WARNING for "[WARNING]"/"[DEPRECATION WARNING]" lines, warning
events and ignored failures; INFO otherwise.

Redaction happens before anything is stored or handed on (to Slack), on each event's whole
output before it is split into lines, and again on each line (`Redactor`):

- every occurrence of a known secret value (variables declared `secret: true`) becomes
  `********` — as it is, and in the forms Ansible prints it: JSON/YAML-escaped (`\\n`,
  `\\"`, `\\\\`), shell-quoted, and for a multi-line value (a private key) each of its lines
  on its own, so a `--diff` of a file holding it (`+` before every line) shows none of it;
- private key blocks and unmistakable tokens (Slack, GitHub, AWS, JWTs) are redacted
  whatever their source (a vaulted inventory value, a file a task rendered), across lines
  and escaped (`core.audit.redact_unmistakable`).

Results of `no_log: true` tasks are already censored by Ansible itself in its output. Not
covered: a secret Ansible transforms before printing (base64, hashed, split in the middle of
a line of a multi-line value), and secrets that look like nothing and are not declared.

`LogSink` batches rows in memory and a writer thread inserts them with one multi-row
INSERT (Core `insert()` executemany, which PyMySQL sends as multi-row VALUES) whenever
`batch_rows` lines are waiting or the oldest waiting line is `flush_interval` old — so a
chatty playbook never costs one INSERT per line, and a quiet one is visible within 200 ms.
If the database falls behind by `max_pending` lines the producer waits: lines are never
dropped.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, Text, insert
from sqlalchemy.exc import SQLAlchemyError

from core.audit import redact_unmistakable
from db.models import LogLevel

log = logging.getLogger(__name__)

REDACTED = "********"
MAX_LINE_CHARS = 16_000  # TEXT holds 64 KB; utf8mb4 needs up to 4 bytes a character
INFO, WARNING, ERROR = LogLevel.INFO.value, LogLevel.WARNING.value, LogLevel.ERROR.value
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NEWLINE = re.compile(r"\r?\n")
_WARNING_PREFIXES = ("[WARNING]", "[DEPRECATION WARNING]")
# a cheap test before the token patterns run (most lines hold none of these)
_TOKEN_HINT = re.compile(r"xox|xapp-|gh[pousr]_|github_pat_|AKIA|sk-|eyJ")

# job_logs for bulk inserts: the same table as `db.models.JobLog`, with plain column types,
# so a row costs no per-value Python type processing (timestamps are passed naive UTC).
_job_logs = Table(
    "job_logs", MetaData(),
    Column("id", Integer, primary_key=True),
    Column("job_id", Integer),
    Column("line_number", Integer),
    Column("content", Text),
    Column("log_level", String(16)),
    Column("timestamp", DateTime),
)
_COLUMNS = ("job_id", "line_number", "content", "log_level", "timestamp")
_INSERT = insert(_job_logs)
_compiled: dict[str, str] = {}


def insert_sql(engine: Engine) -> str:
    """The Core INSERT of job_logs rows, compiled once per dialect with positional
    parameters, so a batch goes to the driver as tuples (PyMySQL then sends one multi-row
    INSERT; the dict form costs ~20% more in parameter handling)."""
    dialect = engine.dialect
    key = f"{dialect.name}+{dialect.driver}"
    sql = _compiled.get(key)
    if sql is None:
        if dialect.paramstyle in ("qmark", "format", "numeric"):
            positional = dialect
        else:
            positional = type(dialect)(paramstyle="format")
        compiled = _INSERT.compile(dialect=positional, column_keys=list(_COLUMNS))
        if tuple(compiled.positiontup or ()) != _COLUMNS:
            raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
        sql = _compiled[key] = str(compiled)
    return sql


class LogWriteError(RuntimeError):
    """Lines could not be stored in job_logs (the database stayed unreachable)."""


MIN_SECRET_LINE = 8  # a line of a multi-line secret shorter than this is not redacted alone


def secret_forms(value: str) -> set[str]:
    """The strings a secret value may appear as in Ansible's output: as it is, JSON/YAML
    escaped, shell-quoted, and — for a multi-line value — each line of at least
    MIN_SECRET_LINE characters (diffs print them one per line, behind `+`/`-`)."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             shlex.quote(value), value.replace("\n", "\\n")}
    if "\n" in value or "\r" in value:
        forms.update(line.strip() for line in re.split(r"\r?\n", value)
                     if len(line.strip()) >= MIN_SECRET_LINE)
    return {form for form in forms if form}


class Redactor:
    """Replaces every known secret value, in each form it may be printed in
    (`secret_forms`), and every unmistakable secret (`core.audit.redact_unmistakable`)
    with `********`. Always active: output with no declared secret is still searched for
    private keys and tokens."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= secret_forms(secret)
        values = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __bool__(self) -> bool:
        return True

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if "-----BEGIN" in text or _TOKEN_HINT.search(text):
            text = redact_unmistakable(text, REDACTED)
        return text


def event_level(event: Mapping[str, Any]) -> str:
    """The level of an event's lines (before per-line [WARNING]/[ERROR] markers)."""
    kind = event.get("event", "")
    if kind == "runner_on_unreachable":
        return ERROR
    if kind in ("runner_on_failed", "runner_item_on_failed"):
        ignored = (event.get("event_data") or {}).get("ignore_errors")
        return WARNING if ignored else ERROR
    if kind in ("warning", "deprecated"):
        return WARNING
    return INFO


def event_lines(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (text, level) lines of one Ansible event, in order."""
    stdout = event.get("stdout")
    if not stdout:
        return []
    if "\x1b" in stdout:
        stdout = _ANSI.sub("", stdout)
    level = event_level(event)
    parts = _NEWLINE.split(stdout) if "\n" in stdout else (stdout,)
    lines = []
    for line in parts:
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("["):
            if line.startswith(_WARNING_PREFIXES) and level == INFO:
                lines.append((line, WARNING))
                continue
            if line.startswith("[ERROR]"):
                lines.append((line, ERROR))
                continue
        lines.append((line, level))
    return lines


def event_time(event: Mapping[str, Any]) -> datetime:
    """When the event happened (naive UTC), from its `created` stamp; now if absent."""
    created = event.get("created")
    if isinstance(created, str):
        try:
            if created.endswith("+00:00"):
                return datetime.fromisoformat(created[:-6])
            moment = datetime.fromisoformat(created)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment
    return datetime.now(UTC).replace(tzinfo=None)


class LogSink:
    """Numbers, redacts and stores the lines of one job — or of every job of a fleet run,
    each numbered 1..N on its own — with one writer thread doing the INSERTs.

    Use `write_event` (or `write_lines`) from the thread reading Ansible's output, then
    `close()` once: it flushes everything and raises LogWriteError if lines were lost.
    `job_pk` is the job lines go to unless a call names another.
    """

    def __init__(self, engine: Engine, job_pk: int, *, redactor: Redactor | None = None,
                 batch_rows: int = 500, flush_interval: float = 0.2,
                 max_pending: int = 50_000, first_line: int = 1,
                 give_up_after: float = 60.0) -> None:
        self._engine = engine
        self._job_pk = job_pk
        self._redact = redactor if redactor else None
        self._batch_rows = max(1, batch_rows)
        self._flush_interval = flush_interval
        self._max_pending = max(max_pending, self._batch_rows)
        self._give_up_after = give_up_after
        self._cond = threading.Condition()
        self._sql = insert_sql(engine)
        self._pending: list[tuple[int, int, str, str, datetime]] = []
        self._pending_since = 0.0
        self._next_lines: dict[int, int] = {job_pk: first_line}
        self._first_line = first_line
        self._stored = 0
        self._closed = False
        self._error: BaseException | None = None
        self._lost = 0
        self._thread = threading.Thread(target=self._run, name=f"logsink-{job_pk}", daemon=True)
        self._thread.start()

    @property
    def line_count(self) -> int:
        """Lines accepted so far for the sink's own job (numbered 1..line_count)."""
        return self.lines_of(self._job_pk)

    def lines_of(self, job_pk: int) -> int:
        """Lines accepted so far for one job."""
        return self._next_lines.get(job_pk, self._first_line) - 1

    @property
    def total_lines(self) -> int:
        """Lines accepted so far, every job together."""
        return sum(n - 1 for n in self._next_lines.values())

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stored(self) -> int:
        """Lines committed to the database so far."""
        return self._stored

    def write_event(self, event: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Store the lines of one Ansible event; return them redacted, with their levels."""
        lines = self.event_lines(event)
        if not lines:
            return []
        return self.write_lines(lines, at=event_time(event))

    def event_lines(self, event: Mapping[str, Any]) -> list[tuple[str, str]]:
        """`event_lines(event)` of the event's output redacted as a whole first, so a secret
        spanning lines (a private key in a diff) is caught before the split."""
        stdout = event.get("stdout")
        if stdout and self._redact is not None:
            event = {**event, "stdout": self._redact(stdout)}
        return event_lines(event)

    def redact(self, lines: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The lines as they are stored: redacted, overlong ones cut."""
        redact = self._redact
        out: list[tuple[str, str]] = []
        for text, level in lines:
            if redact is not None:
                text = redact(text)
            if len(text) > MAX_LINE_CHARS:
                text = f"{text[:MAX_LINE_CHARS]}…[{len(text) - MAX_LINE_CHARS} more characters]"
            out.append((text, level))
        return out

    def write_lines(self, lines: Sequence[tuple[str, str]], *,
                    at: datetime | None = None,
                    jobs: Sequence[int] | None = None) -> list[tuple[str, str]]:
        """Store (text, level) lines for the sink's job, or for each of `jobs` (a fleet
        run's line without a host goes to every job); return them redacted. Blocks only if
        the database is `max_pending` lines behind."""
        if at is None:
            at = datetime.now(UTC).replace(tzinfo=None)
        out = self.redact(lines)
        targets = (self._job_pk,) if jobs is None else tuple(jobs)
        with self._cond:
            if self._closed:
                raise RuntimeError("LogSink is closed")
            while len(self._pending) >= self._max_pending and self._error is None:
                self._cond.wait(1.0)
            was_empty = not self._pending
            if was_empty:
                self._pending_since = time.monotonic()
            for job in targets:
                number = self._next_lines.get(job, self._first_line)
                self._pending.extend(
                    (job, number + i, text, level, at) for i, (text, level) in enumerate(out))
                self._next_lines[job] = number + len(out)
            if was_empty or len(self._pending) >= self._batch_rows:
                self._cond.notify_all()  # the writer starts its flush timer, or flushes
        return out

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every line written so far is committed (or `timeout` passes)."""
        target = self.total_lines
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pending_since = 0.0  # make the writer take what is waiting now
            self._cond.notify_all()
            while (self._stored + self._lost < target and self._error is None
                   and time.monotonic() < deadline):
                self._cond.wait(0.05)

    def close(self, timeout: float = 120.0) -> None:
        """Flush and stop the writer. Raises LogWriteError if lines could not be stored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._error is not None or self._lost:
            raise LogWriteError(f"{self._lost} log lines could not be stored: {self._error}")

    # writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if len(self._pending) >= self._batch_rows:
                        break
                    if self._pending:
                        wait = self._pending_since + self._flush_interval - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                batch, self._pending = self._pending, []
                closing = self._closed
                self._cond.notify_all()  # a producer may be waiting for room
            if batch:
                self._store(batch)
            if closing:
                with self._cond:
                    if not self._pending:
                        return

    def _store(self, batch: list[tuple[int, int, str, str, datetime]]) -> None:
        if self._error is not None:
            self._count_lost(len(batch))
            return
        delay = 0.1
        deadline = time.monotonic() + self._give_up_after
        while True:
            try:
                with self._engine.begin() as connection:
                    connection.exec_driver_sql(self._sql, batch)
            except SQLAlchemyError as exc:
                if time.monotonic() + delay > deadline:
                    log.error("giving up storing %d log lines of job %s: %s",
                              len(batch), self._job_pk, exc)
                    with self._cond:
                        self._error = exc
                    self._count_lost(len(batch))
                    return
                log.warning("storing log lines of job %s failed, retrying in %.1f s: %s",
                            self._job_pk, delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            with self._cond:
                self._stored += len(batch)
                self._cond.notify_all()
            return

    def _count_lost(self, n: int) -> None:
        with self._cond:
            self._lost += n
            self._cond.notify_all()
