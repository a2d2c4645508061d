"""Figure api_logs — the seed's log polling over HTTP: `GET /api/jobs/{id}/logs?after=N`
under 20 concurrent pollers, beside the same query through `db.queries` alone.

`job_logs` holds 5 million rows over 5,000 jobs (quick: 100,000 over 100), loaded with
LOAD DATA LOCAL INFILE as in log_reads. `playbot web` runs as an install runs it (its own
process, waitress with its default 8 threads, MariaDB, Redis for the rate limiter). Each of
20 pollers follows one job of its own with a token of its own, as a browser tab or a CI step
does: it asks for the 100 lines after the last one it saw, on a keep-alive connection, as
fast as it gets answers (far harder than the page's one request a second). So each request
pays what a real poll pays: the token check, the rate limit (Redis), the job lookup, the
page of lines, JSON — and, once per token and job, the audit row.

Baseline: the same pages through `db.queries.log_page` in a fresh session each, from 20
threads of this process: what the database and the ORM cost without HTTP, auth and JSON.
Target: p99 under 50 ms, so one web process serves many viewers polling every second.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy.orm import Session

from bench.context import BenchContext, require
from bench.fixtures import base_rows, finished_jobs, load_job_logs
from bench.procs import Child, bench_env, free_port, wait_port
from bench.results import Figure
from bench.stack import BOT_TOKEN, PLAYBOT, SIGNING_SECRET, WEB_THREADS
from bench.stats import summary_ms
from db.models import Job
from db.session import make_engine, make_session_factory, transaction

TITLE = "Log polling over the HTTP API (20 pollers) vs the same query through db.queries"
POLLERS = 20
PAGE = 100
TARGET_MS = 50.0


def _poll_http(port: int, token: str, job_uuid: str, lines: int, count: int,
               out: list[float], errors: list[str]) -> None:
    """One poller: `count` polls of one job, each for the page after the last line seen."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "bench-api-logs/1.0"}
    after = random.Random(job_uuid).randrange(0, lines - PAGE)
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", f"/api/jobs/{job_uuid}/logs?after={after}&limit={PAGE}",
                         headers=headers)
            response = conn.getresponse()
            body = response.read()
            out.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"{response.status}: {body[:200]!r}")
                return
            page = json.loads(body)
            if len(page["lines"]) != PAGE:
                errors.append(f"page after {after} had {len(page['lines'])} lines")
                return
            after = page["next_after"] if page["next_after"] + PAGE <= lines else 0
    finally:
        conn.close()


def _poll_queries(factory, queries, job_pk: int, lines: int, count: int,  # type: ignore[no-untyped-def]
                  out: list[float], errors: list[str]) -> None:
    after = random.Random(job_pk).randrange(0, lines - PAGE)
    for _ in range(count):
        started = time.perf_counter()
        with factory() as session:
            rows = queries.log_page(session, job_pk, after_line=after, limit=PAGE)
        out.append(time.perf_counter() - started)
        if len(rows) != PAGE:
            errors.append(f"page after {after} had {len(rows)} lines")
            return
        after = rows[-1][0] if rows[-1][0] + PAGE <= lines else 0


def _together(targets: list) -> None:  # type: ignore[type-arg]
    threads = [threading.Thread(target=t) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(ctx: BenchContext) -> list[Figure]:
    queries = require("db.queries", "log_page")
    tokens_mod = require("core.api_tokens", "create")
    require("handlers.api", "create_api")
    jobs = ctx.size(5000, 100, smoke=POLLERS)
    lines_per_job = ctx.size(1000, 1000, smoke=300)
    polls = ctx.size(200, 50, smoke=5)  # per poller and round
    rounds = ctx.size(3, 2, smoke=1)

    url = ctx.servers.database("api_logs")
    redis = ctx.servers.redis()
    engine = make_engine(url)
    factory = make_session_factory(engine)
    log_dir = Path(tempfile.mkdtemp(prefix="playbot-bench-api-logs-"))
    web: Child | None = None
    fake = None
    try:
        with transaction(factory) as session:
            user, server, playbook = base_rows(session, slack_user_id="U_POLLER")
            job_pks = finished_jobs(session, jobs, user=user, server=server, playbook=playbook)
            uuids = dict(session.query(Job.id, Job.job_id))
            tokens = [tokens_mod.create(session, user, name=f"poller-{n}").secret
                      for n in range(POLLERS)]
        ctx.log(f"loading {jobs * lines_per_job:,} job_logs rows over {jobs:,} jobs")
        started = time.monotonic()
        total_rows = load_job_logs(url, job_pks, lines_per_job)
        load_s = time.monotonic() - started

        from bot.fake_slack import FakeSlack

        fake = FakeSlack().start()
        port = free_port()
        web = Child([PLAYBOT, "web", "--host", "127.0.0.1", "--port", str(port),
                     "--threads", str(WEB_THREADS)],
                    env=bench_env(DATABASE_URL=url, REDIS_URL=redis.url,
                                  SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                                  SLACK_API_URL=fake.api_url, LOG_LEVEL="WARNING",
                                  PLAYBOT_API_RATE_LIMIT="1000000/minute"),
                    log_path=log_dir / "web.log")
        try:
            wait_port(port, 60, web.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; web log:\n{web.tail()}") from None

        rng = random.Random(15)
        followed = rng.sample(job_pks, POLLERS)
        ctx.settle()
        http_samples: list[float] = []
        db_samples: list[float] = []
        errors: list[str] = []
        warm: list[float] = []
        _together([lambda n=n: _poll_http(port, tokens[n], uuids[followed[n]], lines_per_job,
                                          3, warm, errors) for n in range(POLLERS)])
        http_wall = 0.0
        for _ in range(rounds):  # interleaved, so drift on a busy machine hits both alike
            began = time.perf_counter()
            _together([lambda n=n: _poll_http(port, tokens[n], uuids[followed[n]],
                                              lines_per_job, polls, http_samples, errors)
                       for n in range(POLLERS)])
            http_wall += time.perf_counter() - began
            _together([lambda n=n: _poll_queries(factory, queries, followed[n], lines_per_job,
                                                 polls, db_samples, errors)
                       for n in range(POLLERS)])
        if errors:
            raise RuntimeError(f"{len(errors)} polls went wrong, e.g. {errors[0]}")
        with Session(engine) as session:
            from db.models import AuditLog

            audit_rows = session.query(AuditLog).filter(AuditLog.action == "log.view").count()
    finally:
        if web is not None:
            web.stop()
        if fake is not None:
            fake.stop()
        engine.dispose()
        shutil.rmtree(log_dir, ignore_errors=True)

    api = summary_ms(http_samples)
    base = summary_ms(db_samples)
    return [Figure(
        key="api_logs", title="Log polling: GET /api/jobs/{id}/logs?after=N, 20 pollers",
        value=api["p99_ms"], unit="ms (p99)", baseline=base["p99_ms"],
        baseline_label="db.queries.log_page p99 (20 threads, no HTTP)",
        target=f"p99 < {TARGET_MS:.0f} ms", met=api["p99_ms"] < TARGET_MS,
        extra={**api, "db_queries_p50_ms": base["p50_ms"], "db_queries_p99_ms": base["p99_ms"],
               "rows": total_rows, "jobs": jobs, "lines_per_job": lines_per_job,
               "pollers": POLLERS, "polls": len(http_samples),
               "requests_per_s": round(len(http_samples) / http_wall, 1), "page": PAGE,
               "web_threads": WEB_THREADS, "load_s": load_s,
               "log_view_audit_rows": audit_rows},
    )]
