"""Figure 1 — ack latency of signed slash commands against the real HTTP app.

The web process is the product's, started as an install starts it (`playbot web`: waitress,
8 threads) in a process of its own, on MariaDB, with a queue that really enqueues to Redis
and Slack faked at its HTTP boundary (FakeSlack, in a third process). 20 closed-loop
clients send a fixed count of signed requests, built and signed before the clock starts,
each on a keep-alive connection:

- `/run-playbook deploy <server> version=1.<n>` — creates a job (after the ack: vars
  validated against the declared ones, job and audit rows) and enqueues it to Redis;
- `/jobs` — a read command answering through the response_url.

Requests come from 20 operators and target 50 servers in turn (request n: operator n mod 20,
server n mod 50), as a team would. The work after each ack is `playbot worker`'s after-ack
consumer (`bot.after_ack_worker`, 4 threads, in a process of its own at nice +10: `bench.serve
after-ack`); no job worker runs, so every job stays pending.

Baseline: a bare Bolt app whose listeners only ack, same signing secret and ack mode,
behind Bolt's WSGI adapter under waitress with the same thread count, in its own process.
The kinds run in interleaved rounds; after each round of a product command the run waits
until the app has done the work behind every ack (for /run-playbook: every job in the
database with its queue message id; for /jobs: every `jobs.list` audit row), so the work
of one round never overlaps the next; how long that took after the last ack is reported.
Target: p99 well under 100 ms and within 3x of the bare app.

Ack to reply posted: for each timed /run-playbook, from its ack read by the client to
FakeSlack receiving the run's channel message (FakeSlack logs the wall time of each post;
the message names the job, whose request key names the request). Two loads:
- `ack_to_reply.run_playbook`: the team's own pace — the same 20 operators, each sending a
  launch every 2 s (`PACED_RATE`, 10 launches a second, 36,000 an hour: far beyond what
  people type), open loop, after the rounds above. Target: p99 <= 250 ms.
- `ack_to_reply.burst`: the launches of the closed-loop rounds, which arrive as fast as
  the web process acks them (hundreds a second): every launch waits behind the ones
  before it, so this reports the after-ack consumer's capacity (`launches_per_s`) as a
  backlog, and has no target of its own.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from itertools import count as counter
from pathlib import Path
from tempfile import mkdtemp
from urllib import parse as _parse

from sqlalchemy import func, select

from bench.context import BenchContext
from bench.load import LoadResult, PreparedRequest, run_load, slash_command
from bench.procs import (
    Child,
    bench_env,
    cpu_seconds,
    free_port,
    wait_port,
)
from bench.results import Figure
from bench.stack import (
    BOT_TOKEN,
    CHANNEL,
    SIGNING_SECRET,
    WEB_THREADS,
    ProductStack,
    read_ready,
)
from bench.stats import summary_ms
from db.models import AuditLog, Job

TITLE = "Ack latency of signed slash commands vs a bare Bolt app, 20 concurrent clients"
CONCURRENCY = 20
P99_LIMIT_MS = 100.0
MAX_RATIO = 3.0
REPLY_P99_LIMIT_MS = 250.0
PACED_RATE = 10.0  # launches a second: 20 operators, one launch every 2 s each
AFTER_ACK_THREADS = 4  # PLAYBOT_AFTER_ACK_THREADS' default
OPERATORS = 20  # request n comes from operator n mod 20 ...
SERVERS = 50  # ... and targets server n mod 50 (all local, development)
EVENTS_PATH = "/slack/events"


class SlackProcess:
    """FakeSlack in a process of its own (so it does not compete with the load generator)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.call_log = log_dir / "posts.jsonl"
        self.child = Child([sys.executable, "-m", "bench.serve", "slack", "--port",
                            str(self.port), "--call-log", str(self.call_log)],
                           env=bench_env(), log_path=log_dir / "slack.log")
        read_ready(self.child)

    def posted_at(self) -> dict[str, float]:
        """When the first channel message naming each job id prefix was posted (wall time)."""
        seen: dict[str, float] = {}
        if not self.call_log.exists():
            return seen
        for line in self.call_log.read_text().splitlines():
            post = json.loads(line)
            for word in (post["text"] + " " + post["blocks"]).replace("`", " ").split():
                if len(word) == 8 and all(c in "0123456789abcdef" for c in word):
                    seen.setdefault(word, post["t"])
        return seen

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def stop(self) -> None:
        self.child.stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def _requests(kind: str, how_many: int, ids: counter, slack_base: str, stack: ProductStack
              ) -> list[PreparedRequest]:
    """Signed requests; request n comes from operator n mod 20 and targets server n mod 50."""
    out = []
    for _ in range(how_many):
        n = next(ids)
        user = stack.operators[n % len(stack.operators)]
        server = stack.servers[n % len(stack.servers)]
        command, text = ("/jobs", "") if kind == "jobs" else (
            "/run-playbook", f"deploy {server} version=1.{n}")
        out.append(slash_command(EVENTS_PATH, SIGNING_SECRET, command, text, user=user,
                                 channel=CHANNEL, trigger_id=f"bench-{kind}-{n}",
                                 response_url=f"{slack_base}/response/cmd-{n}"))
    return out


def _wait_done(stack: ProductStack, kind: str, expected: int, timeout: float = 180) -> float:
    """Seconds until the app finished the work after the acks of `expected` requests.

    /run-playbook: that many jobs are in the database with their queue message id.
    /jobs: that many `jobs.list` audit rows (written just before the reply is posted).
    Raises RuntimeError on timeout.
    """
    if kind == "run":
        stmt = select(func.count()).select_from(Job).where(Job.dramatiq_message_id.is_not(None))
    else:
        stmt = select(func.count()).select_from(AuditLog).where(AuditLog.action == "jobs.list")
    started = time.monotonic()
    while True:
        with stack.session_factory() as session:
            done = session.scalar(stmt) or 0
        if done >= expected:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            with stack.session_factory() as session:
                by_status = dict(session.execute(
                    select(Job.status, func.count()).group_by(Job.status)).tuples().all())
            raise RuntimeError(
                f"{kind}: only {done} of {expected} requests were carried out after "
                f"{timeout:.0f}s (jobs by status: {by_status}); web log:\n"
                f"{stack.web.tail() if stack.web else ''}")
        time.sleep(0.02)


def _reply_latencies(stack: ProductStack, slack: SlackProcess, prepared: list[PreparedRequest],
                     result: LoadResult) -> list[float]:
    """Seconds from each acked /run-playbook of `result` to its run message reaching Slack."""
    acked: dict[str, float] = {}
    for index, at in result.answered_at.items():
        trigger = dict(_parse.parse_qsl(prepared[index].body.decode()))["trigger_id"]
        acked[f"cmd:T_PLAYBOT:{trigger}"] = at
    posted = slack.posted_at()
    with stack.session_factory() as session:
        rows = session.execute(select(Job.request_key, Job.job_id)).all()
    out = []
    for request_key, job_id in rows:
        key = (request_key or "").split("@", 1)[0]
        if key in acked and job_id[:8] in posted:
            out.append(posted[job_id[:8]] - acked[key])
    return out


def _check(result: LoadResult, what: str) -> None:
    bad = {status: n for status, n in result.statuses.items() if status != 200}
    if result.errors or bad:
        raise RuntimeError(f"{what}: {len(result.errors)} connection errors "
                           f"({result.errors[:3]}), non-200 answers {bad}")


@dataclass
class AckMeasurement:
    """Latencies per kind ("bare", "run", "jobs"), drains, and the two servers' peak RSS."""

    results: dict[str, list[LoadResult]]
    drains: dict[str, list[float]]  # per kind: seconds from the last ack to the work done
    per_round: int
    jobs_created: int
    threads: int
    process_before_response: bool
    web_peak_rss_kib: int | None
    bare_peak_rss_kib: int | None
    after_ack_peak_rss_kib: list[int]  # the after-ack consumer process
    reply_latencies: list[float]  # seconds, ack -> run message posted, the rounds' launches
    paced_reply_latencies: list[float]  # the same, launches sent at PACED_RATE
    paced: LoadResult  # the acks of those launches
    served: int
    cpu_ms_per_ack: dict[str, float]  # per kind: the server process's own CPU per request


def measure(ctx: BenchContext, *, total: int, rounds: int, warmup: int,
            paced_count: int) -> AckMeasurement:
    """Serve the product and the bare app, load both, and return what was measured."""
    per_round = total // rounds
    ids = counter(1)
    stack: ProductStack | None = None
    bare: Child | None = None
    consumer: Child | None = None
    slack: SlackProcess | None = None
    replies: list[float] = []
    results: dict[str, list[LoadResult]] = {"bare": [], "run": [], "jobs": []}
    drains: dict[str, list[float]] = {"run": [], "jobs": []}
    cpu_used: dict[str, float] = {"bare": 0.0, "run": 0.0, "jobs": 0.0}
    try:
        slack = SlackProcess(Path(mkdtemp(prefix="playbot-bench-ack-")))
        stack = ProductStack(ctx, "ack", slack_api_url=slack.api_url, operators=OPERATORS,
                             servers=SERVERS)
        stack.start_web(wait=False)
        process_before_response = stack.ack_mode()  # while the web process starts
        stack.wait_web()
        # at nice +10, as a worker sharing the web's host should run (docs/workers.md): on
        # these two cores its launches would otherwise take the acks' CPU
        consumer = Child(["nice", "-n", "10", sys.executable, "-m", "bench.serve",
                          "after-ack", "--threads", str(AFTER_ACK_THREADS)], env=stack.env(),
                         log_path=stack.tmp / "after-ack.log")
        read_ready(consumer)
        bare_port = free_port()
        args = [sys.executable, "-m", "bench.serve", "bare", "--port", str(bare_port),
                "--threads", str(WEB_THREADS)]
        if process_before_response:
            args.append("--process-before-response")
        bare = Child(args, env=bench_env(SLACK_SIGNING_SECRET=SIGNING_SECRET,
                                         SLACK_BOT_TOKEN=BOT_TOKEN,
                                         SLACK_API_URL=slack.api_url),
                     log_path=stack.tmp / "bare.log")
        read_ready(bare)
        wait_port(bare_port, 30, bare.process)
        ports = {"bare": bare_port, "run": stack.web_port, "jobs": stack.web_port}
        assert stack.web is not None
        pids = {"bare": bare.pid, "run": stack.web.pid, "jobs": stack.web.pid}
        ctx.log(f"process_before_response={process_before_response}, {WEB_THREADS} waitress "
                f"threads; {total} requests per kind")

        sent = {"run": 0, "jobs": 0, "bare": 0}
        ctx.settle()
        for kind in ("bare", "run", "jobs"):  # warm up every path (not counted)
            _check(run_load("127.0.0.1", ports[kind], _requests(kind, warmup, ids,
                                                                  slack.base_url, stack),
                            concurrency=CONCURRENCY), f"warm-up {kind}")
            sent[kind] += warmup
            if kind != "bare":
                _wait_done(stack, kind, sent[kind])

        for round_number in range(rounds):
            order = ("bare", "run", "jobs") if round_number % 2 == 0 else ("jobs", "run", "bare")
            for kind in order:
                prepared = _requests(kind, per_round, ids, slack.base_url, stack)
                cpu_before = cpu_seconds(pids[kind]) or 0.0
                result = run_load("127.0.0.1", ports[kind], prepared, concurrency=CONCURRENCY)
                cpu_used[kind] += (cpu_seconds(pids[kind]) or 0.0) - cpu_before
                _check(result, kind)
                results[kind].append(result)
                sent[kind] += per_round
                if kind != "bare":  # the next round starts once this one's work is done
                    drains[kind].append(_wait_done(stack, kind, sent[kind]))
                if kind == "run":
                    replies.extend(_reply_latencies(stack, slack, prepared, result))
            ctx.log(f"round {round_number + 1}/{rounds}: " + ", ".join(
                f"{k} p99 {summary_ms(v[-1].latencies)['p99_ms']:.1f} ms" for k, v in
                results.items()))
        prepared = _requests("run", paced_count, ids, slack.base_url, stack)
        paced = run_load("127.0.0.1", stack.web_port, prepared, concurrency=CONCURRENCY,
                         rate=PACED_RATE)
        _check(paced, "paced run")
        sent["run"] += paced_count
        _wait_done(stack, "run", sent["run"])
        paced_replies = _reply_latencies(stack, slack, prepared, paced)
        ctx.log(f"paced: {paced_count} launches at {PACED_RATE:.0f}/s, ack to reply p99 "
                f"{summary_ms(paced_replies)['p99_ms'] if paced_replies else float('nan'):.1f} ms")
        with stack.session_factory() as session:
            jobs_created = session.scalar(select(func.count()).select_from(Job)) or 0
        assert stack.web is not None
        return AckMeasurement(
            results=results, drains=drains, per_round=per_round, jobs_created=jobs_created,
            threads=WEB_THREADS, process_before_response=process_before_response,
            web_peak_rss_kib=stack.web.peak_rss_kib(), bare_peak_rss_kib=bare.peak_rss_kib(),
            after_ack_peak_rss_kib=[kib for kib in [consumer.peak_rss_kib()] if kib],
            reply_latencies=replies, paced_reply_latencies=paced_replies, paced=paced,
            served=warmup * 2 + per_round * rounds * 2 + paced_count,
            cpu_ms_per_ack={kind: round(used * 1000 / (per_round * rounds), 3)
                            for kind, used in cpu_used.items()})
    finally:
        if bare is not None:
            bare.stop()
        if consumer is not None:
            consumer.stop()
        if stack is not None:
            stack.stop()
        if slack is not None:
            slack.stop()


def run(ctx: BenchContext) -> list[Figure]:
    m = measure(ctx, total=ctx.size(1500, 100, smoke=40), rounds=ctx.size(3, 1),
                warmup=ctx.size(100, 10, smoke=5), paced_count=ctx.size(300, 50, smoke=10))
    ctx.shared["ack"] = m
    results, drains, per_round = m.results, m.drains, m.per_round

    def merged(kind: str) -> tuple[list[float], float]:
        latencies = [x for r in results[kind] for x in r.latencies]
        elapsed = sum(r.elapsed for r in results[kind])
        return latencies, len(latencies) / elapsed

    bare_lat, bare_tput = merged("bare")
    base = summary_ms(bare_lat)
    figures = []
    for kind, label in (("run", "/run-playbook (creates and enqueues a job)"),
                        ("jobs", "/jobs (read command)")):
        latencies, tput = merged(kind)
        stats = summary_ms(latencies)
        extra = {**stats, "throughput_rps": tput, "baseline_p50_ms": base["p50_ms"],
                 "baseline_throughput_rps": bare_tput, "requests": len(latencies),
                 "concurrency": CONCURRENCY,
                 "server": f"waitress, {m.threads} threads, separate process",
                 "process_before_response": m.process_before_response,
                 "server_cpu_ms_per_ack": m.cpu_ms_per_ack[kind],
                 "baseline_server_cpu_ms_per_ack": m.cpu_ms_per_ack["bare"]}
        if kind == "run":
            extra["jobs_created"] = m.jobs_created
            extra["launches_per_s"] = per_round / (
                min(r.elapsed for r in results["run"]) + max(drains["run"]))
        extra["work_done_after_last_ack_s_max"] = max(drains[kind])
        ratio = stats["p99_ms"] / base["p99_ms"]
        figures.append(Figure(
            key=f"ack_latency.{'run_playbook' if kind == 'run' else 'jobs'}",
            title=f"Ack latency: {label}", value=stats["p99_ms"], unit="ms (p99)",
            baseline=base["p99_ms"], baseline_label="bare Bolt app p99",
            target=f"p99 < {P99_LIMIT_MS:.0f} ms and <= {MAX_RATIO:.0f}x bare",
            met=stats["p99_ms"] < P99_LIMIT_MS and ratio <= MAX_RATIO, extra=extra))
    if not m.reply_latencies or not m.paced_reply_latencies:
        raise RuntimeError("no /run-playbook run message could be timed (FakeSlack's post log "
                           "named none of the measured jobs)")
    consumer = {"after_ack_threads": AFTER_ACK_THREADS,
                "consumer": "playbot worker's after-ack consumer, separate process"}
    paced = summary_ms(m.paced_reply_latencies)
    paced_acks = summary_ms(m.paced.latencies)
    figures.append(Figure(
        key="ack_to_reply.run_playbook",
        title=f"Ack to reply posted: /run-playbook ack -> its run message in Slack, "
              f"{PACED_RATE:.0f} launches/s",
        value=paced["p99_ms"], unit="ms (p99)", baseline=REPLY_P99_LIMIT_MS,
        baseline_label="the target p99 (no bare-app counterpart)",
        target=f"p99 <= {REPLY_P99_LIMIT_MS:.0f} ms, 20 operators each launching every 2 s",
        met=paced["p99_ms"] <= REPLY_P99_LIMIT_MS,
        extra={**paced, "replies_timed": len(m.paced_reply_latencies),
               "launches_per_s_offered": PACED_RATE, "ack_p50_ms": paced_acks["p50_ms"],
               "ack_p99_ms": paced_acks["p99_ms"], **consumer}))
    burst = summary_ms(m.reply_latencies)
    figures.append(Figure(
        key="ack_to_reply.burst",
        title="Ack to reply posted: the closed-loop rounds' launches (a backlog)",
        value=burst["p99_ms"], unit="ms (p99)", baseline=REPLY_P99_LIMIT_MS,
        baseline_label="the paced target p99 (for scale)",
        target="none: launches arrive faster than the consumer ends them; see launches_per_s",
        met=None,
        extra={**burst, "replies_timed": len(m.reply_latencies),
               "launches_per_s": figures[0].extra["launches_per_s"],
               "launches_per_s_offered": figures[0].extra["throughput_rps"], **consumer}))
    return figures
