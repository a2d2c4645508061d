"""Figure 5 — log reads at scale: the latest 100 lines of a job and a page from its middle.

`job_logs` holds 5 million rows over 5,000 jobs (quick: 100,000 over 100), loaded with
LOAD DATA LOCAL INFILE. Each sample opens a session, calls the project's query function
(`db.queries.latest_log_lines`, `db.queries.log_page`; `job_with_logs(..., last_lines=100)`
as the /job view reads it) for a random job and reads the rows, like a request would.
For reference the same 100 rows are also read with raw PyMySQL on one open connection
(`same_rows_raw_pymysql_*`): what the database alone costs, without session or ORM.
Baseline: a primary-key point lookup of one random `job_logs` row through the same
sessions (`session.get(JobLog, id)`). Target: p99 in single-digit milliseconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from bench.context import BenchContext, require
from bench.fixtures import base_rows, finished_jobs, load_job_logs, pymysql_connect
from bench.results import Figure
from bench.stats import summary_ms, time_calls
from db.models import Job, JobLog
from db.session import make_engine, make_session_factory, transaction

TITLE = "Log reads at scale (latest 100 lines, a middle page) vs a primary-key lookup"
PAGE = 100
RAW_TAIL = ("SELECT line_number, log_level, content FROM job_logs "
            "WHERE job_id = %s ORDER BY line_number DESC LIMIT %s")  # what latest_log_lines reads
TARGET_MS = 10.0


def _sample(factory: sessionmaker[Session], count: int, read: Callable[[Session, int], int],
            pick: Callable[[], int]) -> list[float]:
    """Time `read(session, pick())` `count` times, each in a fresh session; seconds each."""
    samples = []
    for _ in range(count):
        key = pick()
        started = time.perf_counter()
        with factory() as session:
            rows = read(session, key)
        samples.append(time.perf_counter() - started)
        if rows < 1:
            raise RuntimeError(f"read of {key} returned no rows")
    return samples


def run(ctx: BenchContext) -> list[Figure]:
    queries = require("db.queries", "latest_log_lines", "log_page", "job_with_logs")
    jobs = ctx.size(5000, 100, smoke=3)
    lines_per_job = ctx.size(1000, 1000, smoke=300)
    samples = ctx.size(1000, 100, smoke=20)

    url = ctx.servers.database("log_reads")
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with transaction(factory) as session:
            user, server, playbook = base_rows(session)
            job_pks = finished_jobs(session, jobs, user=user, server=server, playbook=playbook)
            uuids = dict(session.query(Job.id, Job.job_id))
        ctx.log(f"loading {jobs * lines_per_job:,} job_logs rows over {jobs:,} jobs")
        started = time.monotonic()
        total_rows = load_job_logs(url, job_pks, lines_per_job)
        load_s = time.monotonic() - started
        ctx.log(f"loaded in {load_s:.1f}s; measuring {samples} samples per query")

        rng = random.Random(5)

        def random_job() -> int:
            return rng.choice(job_pks)

        def random_row() -> int:
            return rng.randint(1, total_rows)

        def tail(session: Session, job_pk: int) -> int:
            rows = queries.latest_log_lines(session, job_pk, PAGE)
            assert rows[-1].line_number == lines_per_job
            return len(rows)

        def middle(session: Session, job_pk: int) -> int:
            rows = queries.log_page(session, job_pk, after_line=lines_per_job // 2, limit=PAGE)
            assert rows[0].line_number == lines_per_job // 2 + 1
            return len(rows)

        def job_view(session: Session, job_pk: int) -> int:
            found = queries.job_with_logs(session, uuids[job_pk], last_lines=PAGE)
            return len(found.logs)

        def point(session: Session, row_id: int) -> int:
            return 1 if session.get(JobLog, row_id) is not None else 0

        raw = pymysql_connect(url, autocommit=True)

        def raw_tail(job_pk: int) -> int:
            """The same 100 rows with raw PyMySQL: what the database alone costs."""
            with raw.cursor() as cur:
                cur.execute(RAW_TAIL, (job_pk, PAGE))
                return len(cur.fetchall())

        ctx.settle()
        warm = ctx.size(50, 10, smoke=2)
        for read, pick in ((tail, random_job), (middle, random_job), (point, random_row)):
            _sample(factory, warm, read, pick)  # warm the pool and the code paths
        # Interleaved rounds, so drift on a noisy machine hits every query alike.
        results: dict[str, list[float]] = {
            "tail": [], "middle": [], "job_view": [], "point": [], "raw_tail": []}
        rounds = 10
        for _ in range(rounds):
            results["point"] += _sample(factory, samples // rounds, point, random_row)
            results["tail"] += _sample(factory, samples // rounds, tail, random_job)
            results["middle"] += _sample(factory, samples // rounds, middle, random_job)
            results["job_view"] += _sample(factory, samples // rounds, job_view, random_job)
            results["raw_tail"] += time_calls(lambda _: raw_tail(random_job()),
                                              samples // rounds)
        raw.close()
    finally:
        engine.dispose()

    base = summary_ms(results["point"])
    common = {"rows": total_rows, "jobs": jobs, "lines_per_job": lines_per_job,
              "samples": len(results["point"]), "load_s": load_s,
              "baseline_p50_ms": base["p50_ms"]}
    figures = []
    reads = (("tail", "latest 100 lines (db.queries.latest_log_lines)", "latest_100"),
             ("middle", "middle page of 100 (db.queries.log_page)", "middle_page"))
    for key, label, name in reads:
        stats = summary_ms(results[key])
        extra = {**stats, **common}
        if key == "tail":
            view = summary_ms(results["job_view"])
            extra["job_with_logs_p50_ms"] = view["p50_ms"]
            extra["job_with_logs_p99_ms"] = view["p99_ms"]
            raw_stats = summary_ms(results["raw_tail"])
            extra["same_rows_raw_pymysql_p50_ms"] = raw_stats["p50_ms"]
            extra["same_rows_raw_pymysql_p99_ms"] = raw_stats["p99_ms"]
        figures.append(Figure(
            key=f"log_reads.{name}", title=f"Log reads at scale: {label}",
            value=stats["p99_ms"], unit="ms (p99)", baseline=base["p99_ms"],
            baseline_label="primary-key lookup p99",
            target=f"p99 < {TARGET_MS:.0f} ms", met=stats["p99_ms"] < TARGET_MS, extra=extra,
        ))
    return figures

