"""`/jobs [running|failed|mine|@user|history @user|stats]`, `/job <id>`, `/cancel-job <id>`."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from core import users as core_users
from core.errors import InvalidInput
from db import queries
from db.models import JobStatus, User
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.job_views import cancel_job, show_job
from handlers.listeners import Ctx, on_command
from handlers.parsing import UserRef, parse_user, split_words, unknown
from slackui import ids
from slackui.jobs import job_list_blocks, stats_blocks

JOBS_USAGE = "/jobs [running|failed|mine|@user|history @user|stats]"
JOBS_WORDS = ("running", "failed", "mine", "history", "stats", "pending", "waiting")
LIST_LIMIT = 20


def jobs_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words:
        list_jobs(ctx, title="Recent jobs")
        return
    head, rest = words[0].lower(), words[1:]
    user = parse_user(words[0])
    if user is not None:
        show_history(ctx, user)
    elif head == "history":
        target = parse_user(rest[0]) if rest else None
        show_history(ctx, target)
    elif head == "mine":
        show_history(ctx, None)
    elif head == "stats":
        show_stats(ctx)
    elif head == "running":
        # A job waiting for its server (or a worker) is pending: it is shown with the running
        # ones, as "queued" or "waiting for <server>", so nothing in progress is left out.
        list_jobs(ctx, statuses=(JobStatus.running, JobStatus.pending),
                  title="Running and queued jobs")
    elif head in ("failed", "pending"):
        list_jobs(ctx, statuses=(JobStatus(head),), title=f"{head.capitalize()} jobs")
    elif head == "waiting":
        list_jobs(ctx, statuses=(JobStatus.awaiting_approval,), title="Jobs awaiting approval")
    else:
        raise unknown(words[0], JOBS_WORDS, "option", JOBS_USAGE)


def list_jobs(ctx: Ctx, *, title: str, statuses: tuple[JobStatus, ...] | None = None) -> None:
    shown_status = "+".join(s.value for s in statuses) if statuses else "any"
    action = Action("jobs.list", "job", details={"status": shown_status})

    def work(session: Session, user: Any) -> tuple[list[Any], dict[str, int], int]:
        permissions.require(user, permissions.JOB_VIEW)
        jobs = queries.recent_jobs(session, statuses=statuses, limit=LIST_LIMIT)
        total = (len(jobs) if len(jobs) < LIST_LIMIT
                 else queries.count_jobs(session, statuses=statuses))
        return jobs, core_jobs.run_sizes(session, (j.run_id for j in jobs)), total

    jobs, sizes, total = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(title, job_list_blocks(jobs, title=title, limit=LIST_LIMIT,
                                               run_sizes=sizes, total=total))


def show_history(ctx: Ctx, who: UserRef | None) -> None:
    """A user's jobs, newest first; `who=None` means the caller."""
    action = Action("jobs.history", "user", details={"of": str(who) if who else "self"})

    def work(session: Session, user: Any) -> tuple[User, list[Any], dict[str, int], int]:
        permissions.require(user, permissions.JOB_VIEW)
        subject = user if who is None else find_user(session, who)
        action.resource_id = subject.username
        jobs = queries.user_history(session, subject.id, limit=LIST_LIMIT)
        total = (len(jobs) if len(jobs) < LIST_LIMIT
                 else queries.count_jobs(session, user_id=subject.id))
        return subject, jobs, core_jobs.run_sizes(session, (j.run_id for j in jobs)), total

    subject, jobs, sizes, total = perform(ctx.deps, ctx.caller, action, work)
    mine = subject.slack_user_id == ctx.caller.slack_user_id
    title = "Your jobs" if mine else f"Jobs of {subject.username}"
    empty = "You have not run anything yet." if mine else f"{subject.username} has no jobs."
    ctx.reply.ephemeral(title, job_list_blocks(jobs, title=title, empty=empty,
                                               limit=LIST_LIMIT, run_sizes=sizes, total=total))


def show_stats(ctx: Ctx, days: int = 7) -> None:
    action = Action("jobs.stats", "job", details={"days": days})

    def work(session: Session, user: Any) -> dict[Any, int]:
        permissions.require(user, permissions.STATS_VIEW)
        return queries.job_stats(session, days=days)

    counts = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Jobs in the last {days} days", stats_blocks(counts, days=days))


def find_user(session: Session, ref: UserRef) -> User:
    """The user a mention or @name refers to; UnknownUser with the closest usernames."""
    return core_users.find_user(session, slack_user_id=ref.slack_user_id, name=ref.name)


def job_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if len(words) != 1:
        raise InvalidInput("Usage: `/job <job id>` — e.g. `/job 3f2a9c1e`. "
                           "`/jobs` lists recent jobs.")
    show_job(ctx, words[0])


def cancel_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if len(words) != 1:
        raise InvalidInput("Usage: `/cancel-job <job id>` — e.g. `/cancel-job 3f2a9c1e`. "
                           "`/jobs running` lists what is running. A running job of a run of "
                           "several servers stops the whole run.")
    cancel_job(ctx, words[0])


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_JOBS, jobs_command)
    on_command(app, deps, ids.CMD_JOB, job_command)
    on_command(app, deps, ids.CMD_CANCEL, cancel_command)
