"""What a production run would change: the summary of its check-mode preview.

For a production request of a check-safe playbook, `core.jobs.launch` also makes a
check-mode run of the same request, linked on the approval ticket
(`tickets.preview_job_id`). The worker runs it like any check run (`--check --diff`); this
module reads its result for the approval card:

- the tasks that would change, per host: each `changed: [host]` line of the preview's
  output counts for the `TASK [...]` header above it;
- an excerpt of the diff: the lines of each `--- before` … block, at most
  `DIFF_EXCERPT_LINES` of them, each at most `DIFF_LINE_CHARS` characters.

Both come from `job_logs` only, which hold the output as the worker's redactor left it, so
a summary never shows a secret the stored log does not. Nothing here is Slack markup: the
card escapes it (`slackui.tickets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Job, JobLog, JobStatus, Ticket

DIFF_EXCERPT_LINES = 20
DIFF_LINE_CHARS = 200

_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \**\s*$")
_CHANGED = re.compile(r"^changed: \[(?P<host>[^\]]+)\]")
_RESULT = re.compile(r"^(?:ok|changed|skipping|fatal|failed|unreachable|included): \[")


@dataclass(frozen=True)
class PreviewSummary:
    """The result of one preview job, as its stored output says.

    status: the preview job's status (pending and running: not known yet).
    host: the server it ran on. changed: the tasks that would change, by host, in order.
    diff: the diff excerpt; diff_lines: how many diff lines the output holds in all.
    error: why the preview failed, when it did (as stored: redacted).
    """

    job_id: str
    status: JobStatus
    host: str
    changed: dict[str, list[str]] = field(default_factory=dict)
    diff: list[str] = field(default_factory=list)
    diff_lines: int = 0
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status.is_final


def summarize_lines(lines: Iterable[str]) -> tuple[dict[str, list[str]], list[str], int]:
    """(changed tasks by host, diff excerpt, diff line count) of a check run's output."""
    changed: dict[str, list[str]] = {}
    excerpt: list[str] = []
    total = 0
    task: str | None = None
    in_diff = False
    for line in lines:
        found = _TASK.match(line)
        if found:
            task, in_diff = found.group("name").strip(), False
            continue
        if line.startswith("--- before"):
            in_diff = True
        elif in_diff and (not line.strip() or _RESULT.match(line)):
            in_diff = False
        if in_diff:
            total += 1
            if len(excerpt) < DIFF_EXCERPT_LINES:
                excerpt.append(line[:DIFF_LINE_CHARS])
            continue
        hit = _CHANGED.match(line)
        if hit and task is not None:
            tasks = changed.setdefault(hit.group("host"), [])
            if task not in tasks:
                tasks.append(task)
    return changed, excerpt, total


def summarize(session: Session, job: Job) -> PreviewSummary:
    """The summary of one preview job from its stored (redacted) output."""
    lines: Sequence[str] = []
    if job.status.is_final:
        lines = list(session.scalars(
            select(JobLog.content).where(JobLog.job_id == job.id)
            .order_by(JobLog.line_number)))
    changed, excerpt, total = summarize_lines(line or "" for line in lines)
    return PreviewSummary(job_id=job.job_id, status=job.status, host=job.server.hostname,
                          changed=changed, diff=excerpt, diff_lines=total,
                          error=job.error_message if job.status != JobStatus.success else None)


def for_tickets(session: Session, tickets: Iterable[Ticket]) -> dict[int, PreviewSummary]:
    """The summary of each ticket's preview, by preview job primary key."""
    pks = sorted({t.preview_job_id for t in tickets if t.preview_job_id is not None})
    if not pks:
        return {}
    jobs = session.scalars(select(Job).where(Job.id.in_(pks))).unique()
    return {job.id: summarize(session, job) for job in jobs}


def is_preview(session: Session, job_pk: int) -> bool:
    """Whether the job is an approval's preview (a failed one opens no incident ticket)."""
    return session.scalar(select(Ticket.id).where(Ticket.preview_job_id == job_pk)
                          .limit(1)) is not None


def previewed_tickets(session: Session, job_pks: Sequence[int]) -> list[Ticket]:
    """The approval tickets whose preview is one of these jobs (none: not a preview run)."""
    if not job_pks:
        return []
    return list(session.scalars(
        select(Ticket).where(Ticket.preview_job_id.in_(list(job_pks))).order_by(Ticket.id)
    ).unique())
