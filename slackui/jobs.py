"""Job views for replies and modals: one job in detail, job lists, a user's history, statistics.

The job's own channel message (updated live by the worker) is built by
`slackui.job_message`; these builders serve `/job`, `/jobs`, the "Show" button and App Home.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.approvals import EXPIRED_PREFIX, REJECTED_PREFIX
from db.base import utcnow
from db.models import Job, JobStatus
from slackui import ids
from slackui.blocks import (
    Block,
    actions,
    button,
    code_block,
    confirm_dialog,
    context,
    duration,
    escape,
    fields,
    header,
    plain,
    section,
    short_id,
    user_mention,
    when,
)
from slackui.limits import MAX_MESSAGE_BLOCKS, MAX_VIEW_BLOCKS, cap_blocks, more_note, take
from slackui.text import code
from slackui.values import shown_value

STATUS_EMOJI = {
    JobStatus.pending: ":hourglass_flowing_sand:",
    JobStatus.awaiting_approval: ":raised_hand:",
    JobStatus.running: ":arrows_counterclockwise:",
    JobStatus.success: ":white_check_mark:",
    JobStatus.failed: ":x:",
    JobStatus.cancelled: ":no_entry_sign:",
    JobStatus.archived: ":file_cabinet:",
}
STATUS_LABEL = {
    JobStatus.pending: "pending",
    JobStatus.awaiting_approval: "awaiting approval",
    JobStatus.running: "running",
    JobStatus.success: "succeeded",
    JobStatus.failed: "failed",
    JobStatus.cancelled: "cancelled",
    JobStatus.archived: "archived",
}
LOG_TAIL_LINES = 20

# How one server of a run stands, in the order a run's table lists them (trouble first).
HOST_STATES = ("failed", "unreachable", "cancelling", "running", "cancelled",
               "awaiting approval", "pending", "ok", "archived")
HOST_STATE_EMOJI = {
    "failed": ":x:", "unreachable": ":electric_plug:", "cancelling": ":octagonal_sign:",
    "running": ":arrows_counterclockwise:", "cancelled": ":no_entry_sign:",
    "awaiting approval": ":raised_hand:", "pending": ":hourglass_flowing_sand:",
    "ok": ":white_check_mark:", "archived": ":file_cabinet:",
}


def status_label(job: Job) -> str:
    """The word for a job's status; a cancelled job whose approval was refused or ran out
    says "rejected" or "expired", which is what happened to it."""
    if job.status == JobStatus.cancelled:
        error = job.error_message or ""
        if error.startswith(REJECTED_PREFIX):
            return "rejected"
        if error.startswith(EXPIRED_PREFIX):
            return "expired (not approved)"
    return STATUS_LABEL.get(job.status, job.status.value)


def status_text(job: Job) -> str:
    """":x: failed" — the emoji and the word for a job's status."""
    label = status_label(job)
    if job.status == JobStatus.running and job.cancel_requested:
        label = "cancelling"
    outcome = getattr(job, "outcome", None)
    if job.status == JobStatus.archived and outcome is not None:  # how it ended stays shown
        label = f"{label} · {STATUS_LABEL.get(outcome, outcome.value)}"
    return f"{STATUS_EMOJI.get(job.status, '')} {label}"


def host_state(job: Job) -> str:
    """How the job's server stands in its run: one of HOST_STATES. A failed job whose host
    Ansible could not reach (error "unreachable: …") is "unreachable"."""
    if job.status == JobStatus.failed:
        reason = (job.error_message or "").lower()
        return "unreachable" if reason.startswith("unreachable") else "failed"
    if job.status == JobStatus.running:
        return "cancelling" if job.cancel_requested else "running"
    if job.status == JobStatus.success:
        return "ok"
    return STATUS_LABEL.get(job.status, job.status.value)


def run_counts(jobs: Sequence[Job]) -> dict[str, int]:
    """How many servers of a run are in each of HOST_STATES ("cancelling" counts as
    running), in that order, zeros included."""
    counts = dict.fromkeys(HOST_STATES, 0)
    for job in jobs:
        state = host_state(job)
        counts["running" if state == "cancelling" else state] += 1
    del counts["cancelling"]
    return counts


def run_of_text(jobs: Sequence[Job]) -> str:
    """"run of 5 servers: 3 ok · 1 failed · 1 running" — how a list names a job's run."""
    counts = {k: v for k, v in run_counts(jobs).items() if v}
    return (f"run of {len(jobs)} servers: "
            + " · ".join(f"{n} {state}" for state, n in counts.items()))


def job_title(job: Job) -> str:
    check = " (check mode)" if job.check_mode else ""
    return f"{job.playbook.name} on {job.server.hostname}{check}"


def job_line(job: Job, run_size: int = 1) -> str:
    """One line of a job list: id, playbook on host, status, who, when (and "run of N"
    when the job is one of a run of several servers)."""
    run = f" · run `{short_id(job.run_id)}` of {run_size}" if run_size > 1 else ""
    return (f"{STATUS_EMOJI.get(job.status, '')} `{short_id(job.job_id)}` "
            f"*{escape(job.playbook.name)}* on {escape(job.server.hostname)}"
            f"{' (check)' if job.check_mode else ''} · {status_label(job)} · "
            f"{user_mention(job.user.slack_user_id, job.user.username)} · {when(job.created_at)}"
            f"{run}")


def job_list_blocks(jobs: Sequence[Job], *, title: str, empty: str = "No jobs.",
                    limit: int = 20, hint: str | None = None,
                    run_sizes: Mapping[str, int] | None = None,
                    total: int | None = None) -> list[Block]:
    """A titled list of jobs, newest first as given, capped at `limit` with "…and N more".
    run_sizes: servers per run id, to say which jobs belong to a run of several; total: how
    many jobs the list has in all (the jobs given may be only the first of them)."""
    shown, hidden = take(jobs, limit)
    if total is not None:
        hidden = max(total - len(shown), 0)
    sizes = run_sizes or {}
    blocks: list[Block] = [header(title)]
    if not shown:
        blocks.append(section(empty))
    else:
        blocks.append(section("\n".join(job_line(job, sizes.get(job.run_id, 1))
                                        for job in shown)))
        if hidden:
            blocks.append(context(more_note(hidden, "more job" if hidden == 1 else "more jobs")))
    blocks.append(context(hint or "`/job &lt;id&gt;` for details · `/jobs running|failed|mine|stats`"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def job_details_blocks(job: Job, log_lines: Sequence[str] = (), *, buttons: bool = True,
                       limit: int = MAX_MESSAGE_BLOCKS,
                       run: Sequence[Job] = ()) -> list[Block]:
    """One job: status, timings, variables, error, per-host recap, last log lines, and the
    run it belongs to when that has several servers (`run`: every job of it)."""
    blocks: list[Block] = [
        header(f"Job {short_id(job.job_id)}: {job_title(job)}"),
        fields([
            ("Status", status_text(job)),
            ("Requested by", user_mention(job.user.slack_user_id, job.user.username)),
            ("Environment", job.server.environment.value),
            ("Created", when(job.created_at)),
            ("Started", when(job.started_at)),
            ("Finished", when(job.completed_at)),
            ("Duration", duration(_seconds(job))),
            ("Job id", f"`{job.job_id}`"),
            *([("Approved by", f"{user_mention(job.approver.slack_user_id, job.approver.username)}"
                               f" · {when(job.approved_at)}")] if job.approver is not None else []),
            *([("Retry of", f"`#{job.retry_of_id}`")] if job.retry_of_id is not None else []),
        ]),
    ]
    if len(run) > 1:
        blocks.append(section(run_section(job, run)))
    if job.extra_vars:
        shown = "\n".join(f"{code(k)} = {code(shown_value(v))}"
                          for k, v in sorted(job.extra_vars.items()))
        blocks.append(section(f"*Variables*\n{shown}"))
    if job.error_message:
        blocks.append(section(f"*Error*\n{escape(job.error_message)}"))
    if job.recap:
        blocks.append(section("*Recap*\n" + recap_text(job.recap)))
    if log_lines:
        blocks.append(context(f"Last {len(log_lines)} log lines"))
        blocks.append(code_block(list(log_lines)))
    elif job.status in (JobStatus.pending, JobStatus.awaiting_approval):
        blocks.append(context("No output yet."))
    if buttons:
        row = job_buttons(job)
        if row:
            blocks.append(actions(*row, block_id=f"job:{job.job_id}"))
    return cap_blocks(blocks, limit)


def run_section(job: Job, run: Sequence[Job], limit: int = 20) -> str:
    """"*Run* `abcd1234` of 5 servers: 3 ok · 1 failed · 1 running" and its other jobs."""
    others = [j for j in run if j.job_id != job.job_id]
    lines = [f"*Run* `{short_id(job.run_id)}` · {escape(run_of_text(run))}"]
    for other in others[:limit]:
        lines.append(f"{HOST_STATE_EMOJI.get(host_state(other), '')} `{short_id(other.job_id)}` "
                     f"{escape(other.server.hostname)} · {host_state(other)}")
    if len(others) > limit:
        lines.append(more_note(len(others) - limit, "more jobs of this run"))
    return "\n".join(lines)


def job_buttons(job: Job) -> list[Block]:
    """Cancel while the job can still be stopped; Retry once it has failed or was cancelled."""
    row: list[Block] = []
    if job.status in (JobStatus.pending, JobStatus.awaiting_approval, JobStatus.running):
        row.append(button("Cancel", ids.ACTION_JOB_CANCEL, job.job_id, style="danger",
                          confirm=confirm_dialog("Cancel this job?",
                                                 f"Stop {escape(job_title(job))}?",
                                                 "Cancel job", "Keep running", danger=True)))
    if job.status in (JobStatus.failed, JobStatus.cancelled):
        row.append(button("Retry", ids.ACTION_JOB_RETRY, job.job_id))
    return row


def recap_text(recap: Mapping[str, Any]) -> str:
    """Per-host counters ("web-01: ok=3 changed=1 failed=0") from the stored recap."""
    hosts = recap.get("hosts", recap) if isinstance(recap, Mapping) else {}
    lines = []
    for host, counters in sorted(hosts.items()):
        if isinstance(counters, Mapping):
            parts = " ".join(f"{escape(k)}={escape(v)}" for k, v in counters.items())
        else:
            parts = escape(counters)
        lines.append(f"`{escape(host)}` {parts}")
    return "\n".join(lines) or "—"


def job_details_modal(job: Job, log_lines: Sequence[str] = ()) -> dict[str, Any]:
    """A read-only modal with the job details (for "Show" where there is no reply URL)."""
    return {
        "type": "modal",
        "callback_id": ids.VIEW_JOB_DETAILS,
        "title": plain(f"Job {short_id(job.job_id)}", 24),
        "close": plain("Close", 24),
        "blocks": job_details_blocks(job, log_lines, buttons=False, limit=MAX_VIEW_BLOCKS),
    }


def stats_blocks(counts: Mapping[Any, int], *, days: int = 7,
                 title: str | None = None) -> list[Block]:
    """Job counts by status (keys: status names or `JobStatus`) over the last `days` days."""
    counts = {getattr(key, "value", key): int(value) for key, value in counts.items()}
    total = sum(counts.values())
    blocks: list[Block] = [header(title or f"Jobs in the last {days} days")]
    if not total:
        blocks.append(section("No jobs in that period."))
        return blocks
    pairs = []
    for status in JobStatus:
        count = counts.get(status.value, 0)
        if count:
            pairs.append((f"{STATUS_EMOJI[status]} {STATUS_LABEL[status]}", str(count)))
    finished = counts.get("success", 0) + counts.get("failed", 0)
    if finished:
        rate = 100 * counts.get("success", 0) / finished
        pairs.append(("Success rate", f"{rate:.0f}% of finished runs"))
    pairs.append(("Total", str(total)))
    blocks.append(fields(pairs))
    return blocks


def _seconds(job: Job) -> float | None:
    if job.started_at is None:
        return None
    end = job.completed_at or utcnow()
    return (end - job.started_at).total_seconds()
