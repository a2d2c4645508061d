"""Figure 2 — log ingestion: lines per second through the worker's real log path.

The events are real: the chatty playbook is run once through `workers.runner.run_playbook`
(the product's ansible-runner seam) and every Ansible event it produced is kept. They are
then replayed — with a redactor holding two secret values, as a playbook with declared
secrets has — into `workers.logsink.LogSink` (event → lines → redaction → batched INSERT
by its writer thread), configured as the worker configures it (`WorkerConfig` batch size
and flush interval, the worker's engine), until 200,000 lines (quick: 20,000) are stored;
the clock stops when `close()` has committed the last batch.

Baseline: the very rows the sink stored, read back and inserted for another job with raw
PyMySQL multi-row INSERTs (`executemany`, one commit per batch of the same size).
Target: at least 0.8 of the baseline, and at least 20,000 lines/s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.context import BenchContext, require
from bench.fixtures import base_rows, finished_jobs, pymysql_connect
from bench.playbooks import chatty_size, write_playbooks
from bench.results import Figure
from db.session import make_engine, make_session_factory, transaction

TITLE = "Log ingestion through the worker's log path vs raw PyMySQL multi-row INSERTs"
SECRETS = ("hunter2-bench-secret", "s3cr3t-token-value")
MIN_RATIO = 0.8
MIN_RATE = 20_000
RAW_INSERT = ("INSERT INTO job_logs (job_id, line_number, content, log_level, timestamp) "
              "VALUES (%s, %s, %s, %s, %s)")


def record_events(ctx: BenchContext) -> list[dict[str, Any]]:
    """Every Ansible event of one real run of the chatty playbook (recorded in the
    background at the start of `all`, see bench/runner.py, or now)."""
    return ctx.prepared("chatty_events", lambda: record_events_now(ctx))


def record_events_now(ctx: BenchContext) -> list[dict[str, Any]]:
    """Run the chatty playbook through `workers.runner.run_playbook`; its events."""
    runner = require("workers.runner", "run_playbook", "RunSpec", "HostSpec")
    events: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="playbot-bench-events-") as tmp:
        paths = write_playbooks(Path(tmp) / "playbooks", **chatty_size(ctx))
        spec = runner.RunSpec(job_id="bench-events", playbook_path=paths["chatty"],
                              host=runner.HostSpec(name="local", local=True),
                              runtime_dir=Path(tmp) / "runs")
        result = runner.run_playbook(spec, on_event=events.append, should_cancel=lambda: False)
    if result.status != "success":
        raise RuntimeError(f"recording run of the chatty playbook ended {result.status}: "
                           f"{result.error_message}")
    return events


def _replay(sink: Any, events: list[dict[str, Any]], lines: int) -> None:
    """Feed events (cycling) until `lines` lines are accepted; the last event may be cut."""
    logsink = require("workers.logsink", "event_lines")
    while sink.line_count < lines:
        for event in events:
            missing = lines - sink.line_count
            if missing <= 0:
                break
            if len(logsink.event_lines(event)) <= missing:
                sink.write_event(event)
            else:  # cut the last event so the total is exact
                text = "\n".join(event["stdout"].split("\n")[:missing])
                sink.write_event({**event, "stdout": text})


def run(ctx: BenchContext) -> list[Figure]:
    logsink = require("workers.logsink", "LogSink", "Redactor")
    config_mod = require("workers.config", "WorkerConfig")
    middleware = require("workers.middleware", "engine_for")
    lines = ctx.size(200_000, 20_000, smoke=2_000)
    rounds = ctx.size(2, 1)

    events = record_events(ctx)
    per_cycle = sum(len(logsink.event_lines(e)) for e in events)
    ctx.log(f"recorded {len(events)} events, {per_cycle} lines per replay cycle")

    url = ctx.servers.database("ingest")
    config = config_mod.WorkerConfig(database_url=url)
    factory = make_session_factory(make_engine(url))
    with transaction(factory) as session:
        user, server, playbook = base_rows(session)
        job_pks = finished_jobs(session, 2 * rounds, user=user, server=server,
                                playbook=playbook)
    factory.kw["bind"].dispose()

    engine = middleware.engine_for(url)
    with engine.connect():  # a worker's engine is warm: connect outside the clock
        pass
    raw = pymysql_connect(url, autocommit=False)
    product_runs: list[float] = []
    baseline_runs: list[float] = []
    sample_rows: list[tuple[Any, ...]] = []

    def through_log_path(job_pk: int) -> None:
        started = time.perf_counter()
        sink = logsink.LogSink(engine, job_pk, redactor=logsink.Redactor(SECRETS),
                               batch_rows=config.log_batch_rows,
                               flush_interval=config.log_flush_interval)
        _replay(sink, events, lines)
        sink.close()
        product_runs.append(time.perf_counter() - started)
        with raw.cursor() as cur:
            cur.execute("SELECT line_number, content, log_level, timestamp FROM job_logs "
                        "WHERE job_id = %s ORDER BY line_number", (job_pk,))
            stored = cur.fetchall()
        raw.commit()
        if len(stored) != lines or stored[-1][0] != lines:
            raise RuntimeError(f"the log path stored {len(stored)} of {lines} lines")
        sample_rows[:] = stored

    def raw_inserts(job_pk: int) -> None:
        rows = [(job_pk, *row) for row in sample_rows]
        batch = config.log_batch_rows
        started = time.perf_counter()
        with raw.cursor() as cur:
            for first in range(0, len(rows), batch):
                cur.executemany(RAW_INSERT, rows[first:first + batch])
                raw.commit()
        baseline_runs.append(time.perf_counter() - started)

    try:
        for round_number in range(rounds):
            first_job, second_job = job_pks[2 * round_number], job_pks[2 * round_number + 1]
            if round_number % 2 == 0:  # alternate the order: the table grows as we go
                through_log_path(first_job)
                raw_inserts(second_job)
            else:
                raw_inserts(first_job)
                through_log_path(second_job)
            ctx.log(f"round {round_number + 1}: log path {lines / product_runs[-1]:,.0f} lines/s,"
                    f" raw {lines / baseline_runs[-1]:,.0f} lines/s")
        with raw.cursor() as cur:
            cur.execute("SELECT COUNT(*), COUNT(DISTINCT job_id) FROM job_logs")
            stored, jobs = cur.fetchone()
    finally:
        raw.close()
        engine.dispose()

    rate = lines / min(product_runs)
    base_rate = lines / min(baseline_runs)
    ratio = rate / base_rate
    return [Figure(
        key="log_ingestion", title="Log ingestion: event → redaction → batched insert",
        value=rate, unit="lines/s", baseline=base_rate,
        baseline_label="raw PyMySQL multi-row INSERTs",
        target=f">= {MIN_RATIO} of baseline and >= {MIN_RATE:,} lines/s",
        met=ratio >= MIN_RATIO and rate >= MIN_RATE,
        extra={"lines": lines, "rounds": rounds, "batch_rows": config.log_batch_rows,
               "events_per_cycle": len(events), "lines_per_cycle": per_cycle,
               "log_path_s": min(product_runs), "raw_s": min(baseline_runs),
               "rows_stored": stored, "jobs": jobs},
    )]
