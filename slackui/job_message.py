"""The job's own channel message: posted at launch, then updated in place by the worker.

`job_message(job, progress)` renders status, playbook, target, requester, check mode,
timings, live progress while running (tasks done, counters per host) or the final recap,
the error of a failed job, and the buttons the status allows (Cancel while active, Retry
when failed or cancelled). The Slack app posts it first; the worker's notifier updates it.
Reads only loaded attributes (`Job.playbook/server/user` are joined eagerly), never queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.progress import RunProgress
from db.base import utcnow
from db.models import Job, JobStatus
from slackui.blocks import (
    Block,
    actions,
    context,
    duration,
    escape,
    section,
    short_id,
    user_mention,
    when,
)
from slackui.jobs import STATUS_EMOJI, STATUS_LABEL, job_buttons, job_title, status_text
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks, truncate

COUNTER_ORDER = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
MAX_HOST_LINES = 20


def job_message(job: Job, progress: RunProgress | None = None, *,
                waiting_for: str | None = None) -> tuple[str, list[Block]]:
    """Notification text and blocks of the job's channel message.

    progress: live counters while the job runs (the final recap is read from `job.recap`).
    waiting_for: hostname the job waits for (another job is running there).
    """
    blocks: list[Block] = [
        section(f"{status_text(job)} · *{escape(job.playbook.name)}* on "
                f"*{escape(job.server.hostname)}*"
                f"{' · _check mode_' if job.check_mode else ''}"),
        context(*_facts(job)),
    ]
    if job.status == JobStatus.pending and waiting_for:
        blocks.append(section(f":hourglass: Waiting for *{escape(waiting_for)}*: another job "
                              "is running there; this one starts when it ends."))
    if job.status == JobStatus.running:
        blocks.extend(_progress_blocks(progress or RunProgress()))
    elif job.status in (JobStatus.success, JobStatus.failed, JobStatus.cancelled):
        recap = RunProgress.from_recap(job.recap) if job.recap else progress
        if recap is not None and recap.hosts:
            blocks.append(section("*Recap*\n" + host_lines(recap)))
    if job.error_message and job.status in (JobStatus.failed, JobStatus.cancelled):
        blocks.append(section(f"*Error*\n{escape(truncate(job.error_message, 2500))}"))
    buttons = job_buttons(job)
    if buttons:
        blocks.append(actions(*buttons, block_id=f"job:{job.job_id}"))
    return _text(job, waiting_for), cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def host_lines(progress: RunProgress, limit: int = MAX_HOST_LINES) -> str:
    """One line per host: "`web-01` ok 3 · changed 1 · failed 0 · unreachable 0"."""
    lines = []
    for host in sorted(progress.hosts)[:limit]:
        lines.append(f"`{escape(host)}` {counter_text(progress.hosts[host])}")
    hidden = len(progress.hosts) - len(lines)
    if hidden > 0:
        lines.append(f"…and {hidden} more hosts")
    return "\n".join(lines) or "—"


def counter_text(counters: Mapping[str, Any]) -> str:
    """"ok 3 · changed 1 · failed 0 · unreachable 0" (+ skipped/rescued/ignored when > 0)."""
    parts = []
    for name in COUNTER_ORDER:
        value = int(counters.get(name, 0) or 0)
        if name in ("ok", "changed", "failed", "unreachable") or value:
            parts.append(f"{name} {value}")
    return " · ".join(parts)


def _progress_blocks(progress: RunProgress) -> list[Block]:
    now = f" · now: *{escape(progress.current_task)}*" if progress.current_task else ""
    text = f"*Tasks done:* {progress.tasks_done}{now}"
    if progress.hosts:
        text += "\n" + host_lines(progress)
    return [section(text)]


def _facts(job: Job) -> list[str]:
    facts = [f"Job `{short_id(job.job_id)}`",
             f"by {user_mention(job.user.slack_user_id, job.user.username)}",
             job.server.environment.value]
    if job.started_at:
        facts.append(f"started {when(job.started_at)}")
    else:
        facts.append(f"created {when(job.created_at)}")
    if job.started_at and job.completed_at:
        facts.append(f"took {duration((job.completed_at - job.started_at).total_seconds())}")
    elif job.started_at and job.status == JobStatus.running:
        facts.append(f"running for {duration((utcnow() - job.started_at).total_seconds())}")
    return [" · ".join(facts)]


def _text(job: Job, waiting_for: str | None) -> str:
    label = STATUS_LABEL.get(job.status, job.status.value)
    if job.status == JobStatus.pending and waiting_for:
        label = f"waiting for {waiting_for}"
    if job.status == JobStatus.running and job.cancel_requested:
        label = "cancelling"
    text = f"{STATUS_EMOJI.get(job.status, '')} {job_title(job)}: {label}"
    if job.status == JobStatus.failed and job.error_message:
        text += f" — {job.error_message}"
    return truncate(text, 300)
