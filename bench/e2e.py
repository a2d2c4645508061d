"""Figure 3 — end-to-end overhead: slash command → job success shown in Slack.

The product runs for real: the web process (waitress) takes a signed `/run-playbook
<playbook> local`, creates the job and enqueues it on Redis; `playbot worker` claims it,
runs ansible-runner, stores the output in job_logs and streams it to the job's thread; the
clock stops when FakeSlack receives the `chat.update` that shows the job succeeded.
Two playbooks: `small` (three tasks) and `chatty` (a 200-item loop and 3,000 lines of
output, about 3,600 lines in all).

Baseline: plain `ansible-playbook -i <inventory> <playbook>` on the very same playbook
file and the same host variables (local connection, the same interpreter), output read
through a pipe. After a warm-up job (full size only), runs alternate product / plain, five
of each (quick: one); the median of each is compared.
Target: the chatty playbook within 1.3x of plain ansible-playbook. The product's time is
also split by the job's own timestamps: command → job row (`to_job_row`), waiting in the
queue until a worker claims it (`queued`), the playbook run (`running`: started_at →
completed_at), and completed_at → the final update in Slack (`to_final_update`). At full
size each round also runs the playbook through `workers.runner.run_playbook` alone, events
dropped (`runner_seam_only_s`): plain ansible → + ansible-runner → + the rest of the worker.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

from bench.context import BenchContext, require
from bench.playbooks import chatty_size, inventory_file
from bench.procs import bench_env
from bench.results import Figure
from bench.stack import JobDriver, ProductStack
from bot.fake_slack import FakeSlack

TITLE = "End-to-end: slash command to success in Slack vs plain ansible-playbook"
MAX_CHATTY_RATIO = 1.3


def plain_ansible(playbook: str, inventory: str, env: dict[str, str]) -> float:
    """Wall time of `ansible-playbook -i inventory playbook`; raises if it fails."""
    started = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "-i", inventory, playbook], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook {playbook} failed:\n{done.stdout.decode()[-2000:]}")
    return seconds


def runner_only(playbook: Path, tmp: Path) -> float:
    """Wall time of the same playbook through `workers.runner.run_playbook` alone (the
    worker's ansible-runner seam, events dropped): what ansible-runner adds by itself."""
    runner = require("workers.runner", "run_playbook", "RunSpec", "HostSpec")
    spec = runner.RunSpec(job_id=f"bench-runner-{time.monotonic_ns()}", playbook_path=playbook,
                          host=runner.HostSpec(name="local", local=True), runtime_dir=tmp)
    started = time.perf_counter()
    result = runner.run_playbook(spec, on_event=lambda _event: None,
                                 should_cancel=lambda: False)
    seconds = time.perf_counter() - started
    if result.status != "success":
        raise RuntimeError(f"run_playbook({playbook.name}) ended {result.status}")
    return seconds


def line_counts(ctx: BenchContext) -> tuple[int, int]:
    """The output sizes of figure 4's two jobs at this run's scale."""
    return ctx.size(1000, 1000, smoke=50), ctx.size(10_000, 10_000, smoke=500)


def job_stack(ctx: BenchContext) -> tuple[ProductStack, JobDriver]:
    """The running product for figures 3, 4 and 6: FakeSlack in this process, the web
    process and `playbot worker`, every benchmark playbook registered. Started on first use
    and shared by the figures of one run (stopped when the run ends)."""
    if "job_stack" in ctx.shared:
        return ctx.shared["job_stack"]
    fake = FakeSlack().start()
    ctx.defer(fake.stop)
    stack = ProductStack(ctx, "jobs", slack_api_url=fake.api_url,
                         playbooks={**chatty_size(ctx), "line_counts": line_counts(ctx)})
    ctx.defer(stack.stop)
    stack.start_worker()  # both start at once; the first job waits in Redis for the worker
    stack.start_web()
    driver = JobDriver(stack, fake)
    ctx.shared["job_stack"] = (stack, driver)
    return stack, driver


def _median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per phase of the product's runs (see JobRun.phases), the median, as `phase_<name>`."""
    names = {name for run in runs for name in run}
    return {f"phase_{name}": statistics.median(run[name] for run in runs if name in run)
            for name in sorted(names)}


def run(ctx: BenchContext) -> list[Figure]:
    repeats = ctx.size(5, 1)
    stack, driver = job_stack(ctx)
    inventory = str(inventory_file(stack.tmp / "inventory.ini"))
    plain_env = bench_env(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                          ANSIBLE_RETRY_FILES_ENABLED="False", PYTHONUNBUFFERED="1")
    product: dict[str, list[float]] = {"small": [], "chatty": []}
    phases: dict[str, list[dict[str, float]]] = {"small": [], "chatty": []}
    plain: dict[str, list[float]] = {"small": [], "chatty": []}
    seam: dict[str, list[float]] = {"small": [], "chatty": []}
    lines: dict[str, int] = {}
    ctx.settle()
    if not ctx.quick:  # warm up: the worker's first job, ansible's first start
        warm = driver.run("small")
        if warm.status != "success":
            raise RuntimeError(f"warm-up job ended {warm.status}; worker log:\n"
                               f"{stack.worker.tail() if stack.worker else ''}")
        plain_ansible(str(stack.playbooks["small"]), inventory, plain_env)
    for _ in range(repeats):
        for name in ("small", "chatty"):
            job = driver.run(name)
            if job.status != "success":
                raise RuntimeError(f"{name} job ended {job.status}")
            product[name].append(job.seconds)
            phases[name].append(job.phases)
            lines[name] = stack.log_rows(job.job_pk).rows
            plain[name].append(plain_ansible(str(stack.playbooks[name]), inventory,
                                             plain_env))
            if not ctx.quick:
                seam[name].append(runner_only(stack.playbooks[name], stack.tmp / "seam"))
            ctx.log(f"{name}: product {product[name][-1]:.2f}s, "
                    f"plain {plain[name][-1]:.2f}s, {lines[name]} lines")
    ctx.shared["worker_peak_rss_kib"] = stack.worker.peak_rss_kib() if stack.worker else None
    ctx.shared["worker_ran"] = "small and chatty jobs (figure 3)"

    figures = []
    for name, label in (("small", "small playbook (3 tasks)"),
                        ("chatty", f"chatty playbook ({lines['chatty']:,} lines)")):
        value = statistics.median(product[name])
        base = statistics.median(plain[name])
        ratio = value / base
        figures.append(Figure(
            key=f"end_to_end.{name}", title=f"End-to-end: {label}", value=value, unit="s",
            baseline=base, baseline_label="plain ansible-playbook",
            target=f"<= {MAX_CHATTY_RATIO}x plain" if name == "chatty" else "",
            met=ratio <= MAX_CHATTY_RATIO if name == "chatty" else None,
            extra={"runs": repeats, "product_s": product[name], "plain_s": plain[name],
                   "overhead_s": value - base, "log_lines": lines[name],
                   **_median_phases(phases[name])}))
        if seam[name]:
            figures[-1].extra["runner_seam_only_s"] = statistics.median(seam[name])
    return figures
