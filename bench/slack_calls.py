"""Figure 4 — Slack API calls per job: bounded by the rate limits, not by the output.

Two jobs run end to end through the real stack (web process, `playbot worker`, FakeSlack):
`lines_1000` and `lines_10000` print exactly 1,000 and 10,000 marker lines. Every Web API
call FakeSlack receives from the command to the job's final update is counted, whoever
made it (the web process announcing the job, the worker's notifier streaming the thread,
updating the message, uploading the full log).

Value: calls for the 10,000-line job; baseline: calls for the 1,000-line job. Ten times
the output may cost at most twice the calls (a file upload instead of more posts), unless
the job also ran longer: then the calls may grow 1.5x as fast as the duration — with the
time, not with the output (the lines ratio is 10).
Each job must stay within the rate-limit bound for its duration d seconds: what Slack
allows in that time — one message per second in the channel (chat.postMessage) plus
Tier-3 chat.update (50 a minute) — plus a constant 10 for the announcement, the file
upload and the final update.
Nothing may be lost: job_logs must hold exactly the marker lines, numbered 1..n.
"""

from __future__ import annotations

import math

from bench.context import BenchContext
from bench.e2e import job_stack, line_counts
from bench.results import Figure
from bench.stack import JobRun, LogRows

TITLE = "Slack API calls per job (10,000 vs 1,000 lines), against the rate-limit bound"
CONSTANT_CALLS = 10
FLAT_GROWTH = 2.0  # ten times the lines may cost at most twice the calls...
TIME_GROWTH = 1.5  # ... unless the job also ran longer: then 1.5x its duration ratio


def rate_bound(seconds: float) -> int:
    """Calls Slack's limits allow a job of this duration (see the module docstring)."""
    return math.ceil(seconds) * 1 + math.ceil(seconds * 50 / 60) + CONSTANT_CALLS


def run(ctx: BenchContext) -> list[Figure]:
    small, big = line_counts(ctx)
    stack, driver = job_stack(ctx)
    runs: dict[int, JobRun] = {}
    kept: dict[int, LogRows] = {}
    ctx.settle()
    for count in (small, big):
        job = driver.run(f"lines_{count}")
        if job.status != "success":
            raise RuntimeError(f"lines_{count} job ended {job.status}")
        runs[count] = job
        kept[count] = stack.log_rows(job.job_pk)
        ctx.log(f"{count} lines: {len(job.calls)} calls in {job.seconds:.1f}s "
                f"{job.calls_by_method()}; job_logs {kept[count]}")

    big_run, small_run = runs[big], runs[small]
    big_rows, small_rows = kept[big], kept[small]
    lossless = all(rows.marker_lines == count and rows.contiguous
                   for count, rows in kept.items())
    calls, base_calls = len(big_run.calls), len(small_run.calls)
    bound, base_bound = rate_bound(big_run.seconds), rate_bound(small_run.seconds)
    duration_ratio = big_run.seconds / small_run.seconds
    calls_ratio = calls / base_calls
    within_limits = calls <= bound and base_calls <= base_bound
    allowed_growth = max(FLAT_GROWTH, TIME_GROWTH * duration_ratio)
    follows_time = calls_ratio <= allowed_growth
    return [Figure(
        key="slack_calls", title=f"Slack API calls for a {big:,}-line job",
        value=calls, unit="calls", baseline=base_calls,
        baseline_label=f"calls for a {small:,}-line job",
        target=(f"within the rate-limit bound for its duration; calls grow with duration, "
                f"not output (ratio <= max({FLAT_GROWTH:g}, {TIME_GROWTH:g} x duration "
                f"ratio) for {big // small}x the lines); no line lost"),
        met=within_limits and follows_time and lossless,
        extra={"duration_s": big_run.seconds, "rate_limit_bound": bound,
               "calls_per_s": calls / big_run.seconds,
               "baseline_duration_s": small_run.seconds, "baseline_rate_limit_bound": base_bound,
               "baseline_calls_per_s": base_calls / small_run.seconds,
               "duration_ratio": duration_ratio, "lines_ratio": big / small,
               "allowed_calls_ratio": allowed_growth,
               "methods": big_run.calls_by_method(),
               "baseline_methods": small_run.calls_by_method(),
               "job_logs_rows": big_rows.rows,
               "job_logs_marker_lines": big_rows.marker_lines,
               "baseline_job_logs_marker_lines": small_rows.marker_lines,
               "nothing_lost": lossless},
    )]
