"""Figure 6 — memory: peak RSS (VmHWM) of the web process and of a worker.

- Web: the product's web process right after serving the ack benchmark (figure 1's load,
  or a smaller one of its own when run alone); baseline: the bare Bolt app served the same
  way under the same load. The after-ack consumer (`playbot worker`'s, `bot.after_ack_worker`,
  in a process of its own) is reported beside it (`after_ack_processes_peak_mib`, and the
  sum with the web process).
- Worker: the `playbot worker` process right after running the small and chatty jobs
  (figure 3, or one chatty job of its own when run alone); its ansible-playbook children
  are separate processes and not counted. Baseline: a bare Python process of the same
  interpreter that imports nothing.
Peaks are read from /proc/<pid>/status (VmHWM) just before each process is stopped.
No target: the figure is there to notice growth.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench import ack
from bench.context import BenchContext
from bench.e2e import job_stack
from bench.procs import status_kib
from bench.results import Figure

TITLE = "Peak RSS of the web process and of a worker running the chatty job"


def bare_python_peak_kib() -> int:
    """VmHWM of `python -c ...` that imports nothing and waits (same interpreter, same venv)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        time.sleep(0.3)
        peak = None
        deadline = time.monotonic() + 10
        while peak is None and time.monotonic() < deadline:
            peak = status_kib(child.pid, "VmHWM")
            time.sleep(0.05)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=10)
    if peak is None:
        raise RuntimeError("could not read the bare Python process's VmHWM")
    return peak


def run(ctx: BenchContext) -> list[Figure]:
    measured = ctx.shared.get("ack")
    if measured is None:
        ctx.log("ack figure not run in this process: serving a load of our own")
        measured = ack.measure(ctx, total=ctx.size(1000, 100, smoke=20), rounds=1,
                               warmup=ctx.size(50, 10, smoke=5))
    web, bare = measured.web_peak_rss_kib, measured.bare_peak_rss_kib

    worker = ctx.shared.get("worker_peak_rss_kib")
    worker_ran = ctx.shared.get("worker_ran")
    if worker is None:
        ctx.log("e2e figure not run in this process: running the chatty job once")
        stack, driver = job_stack(ctx)
        job = driver.run("chatty")
        if job.status != "success":
            raise RuntimeError(f"chatty job ended {job.status}")
        assert stack.worker is not None
        worker = stack.worker.peak_rss_kib()
        worker_ran = "one chatty job"
    python = bare_python_peak_kib()
    if web is None or bare is None or worker is None:
        raise RuntimeError(f"could not read a peak RSS (web {web}, bare {bare}, worker {worker})")
    return [
        Figure(key="memory.web", title="Peak RSS of the web process after the ack load",
               value=web / 1024, unit="MiB", baseline=bare / 1024,
               baseline_label="bare Bolt app, same load",
               extra={"requests_served": measured.served, "bare_python_mib": python / 1024,
                      "after_ack_processes_peak_mib": [
                          round(kib / 1024, 1) for kib in measured.after_ack_peak_rss_kib],
                      "web_and_after_ack_processes_mib": round(
                          (web + sum(measured.after_ack_peak_rss_kib)) / 1024, 1)}),
        Figure(key="memory.worker", title="Peak RSS of the worker process",
               value=worker / 1024, unit="MiB", baseline=python / 1024,
               baseline_label="bare Python process",
               extra={"worker_ran": worker_ran}),
    ]
