"""The channel message of a run: posted at launch, then updated in place by the worker.

`run_message(jobs, progress)` draws one run (every job of one launch). For a run of one
server it is `job_message(job, progress)`: status, playbook, target, requester, check mode,
timings, live progress while running (tasks done, counters per host) or the final recap,
the error of a failed job, and the buttons the status allows (Cancel while active, Retry
when failed or cancelled).

A run of several servers gets one message for all of them: a headline with the run's
status and counts (running / ok / failed / unreachable, and cancelled / awaiting approval
/ pending when there are any), a per-host table (trouble first: failed, unreachable,
running…, then ok), summarised past `MAX_RUN_HOSTS` lines ("…and 37 more ok"), and the
run's buttons: Cancel (stops the whole run; its confirm dialog names the servers) and,
once it has ended with failures, Retry failed hosts. It always fits Slack's 50 blocks.

The Slack app posts it first; the worker's notifier updates it. Reads only loaded
attributes (`Job.playbook/server/user` are joined eagerly), never queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.progress import RunProgress
from db.base import utcnow
from db.models import Job, JobStatus
from slackui import ids
from slackui.blocks import (
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    duration,
    escape,
    section,
    short_id,
    user_mention,
    when,
)
from slackui.jobs import (
    HOST_STATE_EMOJI,
    HOST_STATES,
    STATUS_EMOJI,
    STATUS_LABEL,
    host_state,
    job_buttons,
    job_title,
    run_counts,
    status_text,
)
from slackui.limits import MAX_MESSAGE_BLOCKS, MAX_SECTION_TEXT, cap_blocks, truncate
from slackui.text import code
from slackui.values import shown_value

COUNTER_ORDER = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
MAX_HOST_LINES = 20
MAX_RUN_HOSTS = 30  # host lines in a run's table; the rest are summarised by state
HOST_ERROR_CHARS = 160
CONFIRM_NAMES = 10  # servers named in the Cancel confirm dialog
HEADLINE_COUNTS = ("running", "ok", "failed", "unreachable")  # always shown, zeros too


def run_message(jobs: Sequence[Job], progress: RunProgress | None = None, *,
                waiting_for: Sequence[str] = ()) -> tuple[str, list[Block]]:
    """Notification text and blocks of a run's channel message (see the module docstring).

    jobs: every job of the run (any order). progress: the whole run's live counters per
        host (while it runs; a finished job's counters are read from its `recap`).
    waiting_for: hostnames the run waits for (other jobs are running there).
    For one job this is exactly `job_message(job, progress, waiting_for=...)`.
    """
    if len(jobs) == 1:
        return job_message(jobs[0], progress,
                           waiting_for=", ".join(waiting_for) if waiting_for else None)
    ordered = sorted(jobs, key=lambda j: j.server.hostname.lower())
    first = ordered[0]
    counts = run_counts(ordered)
    status = run_status(ordered)
    blocks: list[Block] = [
        section(f"{_run_status_text(ordered, status)} · *{escape(first.playbook.name)}* on "
                f"*{len(ordered)} servers*{' · _check mode_' if first.check_mode else ''}",
                accessory=live_log_button(first.run_id)),
        context(_count_text(counts)),
        context(*_run_facts(ordered, status)),
    ]
    variables = variables_line(first)  # one launch: every job has the same variables
    if variables is not None:
        blocks.append(variables)
    waiting = [j for j in ordered if j.status == JobStatus.awaiting_approval]
    if waiting and counts["pending"]:
        names = _names([j.server.hostname for j in waiting])
        blocks.append(section(
            f":raised_hand: Waiting for an admin to approve {names} (production): the run "
            f"starts on its other {counts['pending']} servers once that is decided."))
    if waiting_for and status == JobStatus.pending:
        blocks.append(section(
            f":hourglass: Waiting for {_names(list(waiting_for))}: other jobs are running "
            "there; the run starts when they end."))
    if status == JobStatus.running and progress is not None:
        now = f" · now: *{escape(progress.current_task)}*" if progress.current_task else ""
        blocks.append(context(f"Tasks done: {progress.tasks_done}{now}"))
    blocks.extend(section(text) for text in _host_table(ordered, progress))
    buttons = run_buttons(ordered)
    if buttons:
        blocks.append(actions(*buttons, block_id=f"run:{first.run_id}"))
    return _run_text(ordered, status, counts), cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def live_log_button(run_id: str | None) -> Block | None:
    """"Live log" beside the headline: each viewer who clicks gets a link signed for them
    (a channel message cannot carry a per-viewer link itself). None for an unsaved job."""
    return button("Live log", ids.ACTION_LIVE_LOG, run_id) if run_id else None


def run_status(jobs: Sequence[Job]) -> JobStatus:
    """The status of a run as a whole: running while any job runs; else pending or
    awaiting approval while any waits; else failed if any failed, cancelled if any was
    cancelled, success when all succeeded."""
    statuses = {job.status for job in jobs}
    for status in (JobStatus.running, JobStatus.pending, JobStatus.awaiting_approval,
                   JobStatus.failed, JobStatus.cancelled, JobStatus.success):
        if status in statuses:
            return status
    return JobStatus.archived


def run_buttons(jobs: Sequence[Job]) -> list[Block]:
    """Cancel while any server of the run can still be stopped (the whole run: Ansible
    runs its servers together); Retry failed hosts once it has ended with failures."""
    first = jobs[0]
    row: list[Block] = []
    active = [j for j in jobs if j.status in (JobStatus.pending, JobStatus.awaiting_approval,
                                              JobStatus.running)]
    if active:
        names = _plain_names([j.server.hostname for j in active])
        # the confirm text is cut at 300 characters: the meaning first, the names last
        if any(j.status == JobStatus.running for j in active):
            what = (f"This stops the whole run on {len(active)} servers: Ansible runs them "
                    f"together and can only stop them all. Servers: {names}")
        else:
            what = (f"This cancels the run on {len(active)} servers; none of them has "
                    "started (`/cancel-job &lt;job id&gt;` leaves out one server only). "
                    f"Servers: {names}")
        row.append(button("Cancel run", ids.ACTION_RUN_CANCEL, first.run_id, style="danger",
                          confirm=confirm_dialog(f"Cancel the run on {len(active)} servers?",
                                                 what, "Cancel run", "Keep running",
                                                 danger=True)))
    failed = [j for j in jobs if j.status == JobStatus.failed]
    if failed and not active:
        row.append(button(f"Retry {len(failed)} failed host{'s' if len(failed) != 1 else ''}",
                          ids.ACTION_RUN_RETRY_FAILED, first.run_id))
    return row


def _run_status_text(jobs: Sequence[Job], status: JobStatus) -> str:
    label = STATUS_LABEL.get(status, status.value)
    if status == JobStatus.running and any(j.cancel_requested for j in jobs
                                           if j.status == JobStatus.running):
        label = "cancelling"
    if status == JobStatus.failed:
        failed = sum(1 for j in jobs if j.status == JobStatus.failed)
        label = f"failed on {failed} of {len(jobs)}"
    return f"{STATUS_EMOJI.get(status, '')} {label}"


def _count_text(counts: Mapping[str, int]) -> str:
    parts = [f"{HOST_STATE_EMOJI[state]} {state} {n}" for state, n in counts.items()
             if state in HEADLINE_COUNTS or n]
    return " · ".join(parts)


def _run_facts(jobs: Sequence[Job], status: JobStatus) -> list[str]:
    first = jobs[0]
    environments = sorted({j.server.environment.value for j in jobs})
    facts = [f"Run `{short_id(first.run_id)}`",
             f"by {user_mention(first.user.slack_user_id, first.user.username)}",
             *_who_else(next((j for j in jobs if j.approver is not None), first)),
             ", ".join(environments)]
    started = [j.started_at for j in jobs if j.started_at]
    if started:
        facts.append(f"started {when(min(started))}")
    else:
        facts.append(f"created {when(min(j.created_at for j in jobs))}")
    ended = [j.completed_at for j in jobs if j.completed_at]
    if started and status in (JobStatus.success, JobStatus.failed, JobStatus.cancelled):
        if ended:
            facts.append(f"took {duration((max(ended) - min(started)).total_seconds())}")
    elif started and status == JobStatus.running:
        facts.append(f"running for {duration((utcnow() - min(started)).total_seconds())}")
    return [" · ".join(facts)]


def _host_table(jobs: Sequence[Job], progress: RunProgress | None) -> list[str]:
    """The per-host lines in sections of at most Slack's 3000 characters: trouble first,
    at most MAX_RUN_HOSTS lines, the rest summarised by state."""
    rank = {state: i for i, state in enumerate(HOST_STATES)}
    ordered = sorted(jobs, key=lambda j: (rank.get(host_state(j), len(rank)),
                                          j.server.hostname.lower()))
    shown, hidden = ordered[:MAX_RUN_HOSTS], ordered[MAX_RUN_HOSTS:]
    lines = [_host_line(job, progress) for job in shown]
    if hidden:
        left: dict[str, int] = {}
        for job in hidden:
            left[host_state(job)] = left.get(host_state(job), 0) + 1
        lines.append("…and " + ", ".join(f"{n} more {state}" for state, n in left.items()))
    sections: list[str] = []
    current: list[str] = []
    for line in lines:
        if current and len("\n".join([*current, line])) > MAX_SECTION_TEXT - 100:
            sections.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        sections.append("\n".join(current))
    return sections


def _host_line(job: Job, progress: RunProgress | None) -> str:
    state = host_state(job)
    host = job.server.hostname
    line = f"{HOST_STATE_EMOJI.get(state, '')} `{escape(host)}` {state}"
    counters = None
    if job.status == JobStatus.running and progress is not None:
        counters = progress.hosts.get(host)
    elif job.recap:
        recap = RunProgress.from_recap(job.recap).hosts
        counters = recap.get(host) or (next(iter(recap.values())) if len(recap) == 1 else None)
    if counters:
        line += f" · {counter_text(counters)}"
    if state in ("failed", "unreachable", "cancelled") and job.error_message:
        line += f" — {escape(truncate(job.error_message, HOST_ERROR_CHARS))}"
    return line


def _run_text(jobs: Sequence[Job], status: JobStatus, counts: Mapping[str, int]) -> str:
    first = jobs[0]
    check = " (check mode)" if first.check_mode else ""
    what = f"{escape(first.playbook.name)} on {len(jobs)} servers{check}"
    label = _run_status_text(jobs, status).split(" ", 1)[1]
    shown = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return truncate(f"{STATUS_EMOJI.get(status, '')} {what}: {label} ({shown})", 300)


def _names(hosts: Sequence[str], limit: int = CONFIRM_NAMES) -> str:
    """"*web-01*, *web-02* and 3 more" (escaped mrkdwn)."""
    shown = ", ".join(f"*{escape(h)}*" for h in hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")


def _plain_names(hosts: Sequence[str], limit: int = CONFIRM_NAMES) -> str:
    shown = ", ".join(escape(h) for h in hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")


def job_message(job: Job, progress: RunProgress | None = None, *,
                waiting_for: str | None = None) -> tuple[str, list[Block]]:
    """Notification text and blocks of the job's channel message.

    progress: live counters while the job runs (the final recap is read from `job.recap`).
    waiting_for: hostname the job waits for (another job is running there).
    """
    blocks: list[Block] = [
        section(f"{status_text(job)} · *{escape(job.playbook.name)}* on "
                f"*{escape(job.server.hostname)}*"
                f"{' · _check mode_' if job.check_mode else ''}",
                accessory=live_log_button(job.run_id)),
        context(*_facts(job)),
    ]
    variables = variables_line(job)
    if variables is not None:
        blocks.append(variables)
    if job.status == JobStatus.pending and waiting_for:
        blocks.append(section(f":hourglass: Waiting for *{escape(waiting_for)}*: another job "
                              "is running there; this one starts when it ends."))
    if job.status == JobStatus.running and job.cancel_requested:
        # whoever draws it now may not know the worker's counters: none shown, rather
        # than a "Tasks done: 0" that the worker's next update would contradict
        blocks.append(section(":octagonal_sign: *Cancelling:* the run stops at the next task."
                              + ("" if progress is None else
                                 f" Tasks done: {progress.tasks_done}.")))
    elif job.status == JobStatus.running and progress is not None:
        blocks.extend(_progress_blocks(progress))
    elif job.status in (JobStatus.success, JobStatus.failed, JobStatus.cancelled):
        recap = RunProgress.from_recap(job.recap) if job.recap else progress
        if recap is not None and recap.hosts:
            blocks.append(section("*Recap*\n" + host_lines(recap)))
    if job.error_message and job.status in (JobStatus.failed, JobStatus.cancelled):
        heading = "Error" if job.status == JobStatus.failed else "Cancelled"
        blocks.append(section(f"*{heading}*\n{escape(truncate(job.error_message, 2500))}"))
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
             *_who_else(job), job.server.environment.value]
    if job.started_at:
        facts.append(f"started {when(job.started_at)}")
    else:
        facts.append(f"created {when(job.created_at)}")
    if job.started_at and job.completed_at:
        facts.append(f"took {duration((job.completed_at - job.started_at).total_seconds())}")
    elif job.started_at and job.status == JobStatus.running:
        facts.append(f"running for {duration((utcnow() - job.started_at).total_seconds())}")
    return [" · ".join(facts)]


def _who_else(job: Job) -> list[str]:
    """"approved by @bob" and "retry of #12" (the job it retried, by the id rule)."""
    facts = []
    if job.approver is not None:
        facts.append(f"approved by {user_mention(job.approver.slack_user_id, job.approver.username)}")
    if job.retry_of_id is not None:
        facts.append(f"retry of `#{job.retry_of_id}`")
    return facts


def variables_line(job: Job) -> Block | None:
    """The variables the job runs with, as typed: `version=2.4` `dry_run=true`."""
    if not job.extra_vars:
        return None
    shown = " ".join(code(f"{k}={shown_value(v)}") for k, v in sorted(job.extra_vars.items()))
    return context(truncate(f"Variables: {shown}", MAX_SECTION_TEXT))


def _text(job: Job, waiting_for: str | None) -> str:
    label = STATUS_LABEL.get(job.status, job.status.value)
    if job.status == JobStatus.pending and waiting_for:
        label = f"waiting for {waiting_for}"
    if job.status == JobStatus.running and job.cancel_requested:
        label = "cancelling"
    text = f"{STATUS_EMOJI.get(job.status, '')} {escape(job_title(job))}: {escape(label)}"
    if job.status == JobStatus.failed and job.error_message:
        text += f" — {escape(job.error_message)}"
    return truncate(text, 300)
