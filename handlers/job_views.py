"""Job and run flows shared by commands and buttons: show a job, cancel it (or its run), retry
it (or a run's failed hosts), refresh the run's message.

`/job`, `/cancel-job`, `/run-playbook --retry-failed` and the run message's Show / Cancel /
Retry / Retry failed hosts buttons all land here, so a button and its command behave (and
are audited) the same way.

Cancelling a running job of a run of several servers stops the whole run (Ansible runs its
servers together and can only stop them all) and the answer says so, naming the servers;
cancelling a pending job of such a run cancels that job alone. The run message's Cancel
button cancels the whole run.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from db import queries
from db.models import Job, JobStatus
from handlers.chat import Action, perform
from handlers.launching import (
    answer_duplicate,
    finish_launch,
    load_run,
    loaded,
    refresh_run_message,
)
from handlers.listeners import Ctx
from slackui.blocks import escape, short_id
from slackui.jobs import job_details_blocks, job_details_modal, job_title

LOG_TAIL = 20
NAMED_HOSTS = 10


def load_job_details(ctx: Ctx, job_ref: str, *, action_name: str = "job.show"
                     ) -> tuple[Job, list[str], list[Job]]:
    """The job `job_ref` names, its last log lines and every job of its run, as the caller
    (audited)."""
    action = Action(action_name, "job", job_ref)

    def work(session: Session, user: Any) -> tuple[Job, list[str], list[Job]]:
        permissions.require(user, permissions.JOB_VIEW)
        job = core_jobs.get_job(session, job_ref)
        action.resource_id = job.job_id
        lines: list[str] = []
        if permissions.can(user, permissions.LOG_VIEW):
            lines = [row.content for row in queries.latest_log_lines(session, job.id, LOG_TAIL)]
        run = core_jobs.run_jobs(session, job.run_id)
        for member in run:
            _ = (member.playbook, member.server, member.user)
        return job, lines, run

    return perform(ctx.deps, ctx.caller, action, work)


def show_job(ctx: Ctx, job_ref: str) -> None:
    """Reply with the job's details (a modal when the request has no reply URL, e.g. Home)."""
    job, lines, run = load_job_details(ctx, job_ref)
    if ctx.caller.response_url or ctx.caller.channel_id:
        ctx.reply.ephemeral(f"Job {short_id(job.job_id)}: {escape(job_title(job))}",
                            job_details_blocks(job, lines, run=run))
    else:
        modal = job_details_modal(job, lines)
        if len(run) > 1:
            modal["blocks"] = job_details_blocks(job, lines, buttons=False, limit=100, run=run)
        ctx.client.views_open(trigger_id=ctx.caller.trigger_id, view=modal)


def cancel_job(ctx: Ctx, job_ref: str) -> None:
    """Cancel a job (own: operator; anyone's: admin) and update its run's message."""
    action = Action("job.cancel", "job", job_ref, audited_by_core=True)

    def work(session: Session, user: Any) -> Job:
        return core_jobs.cancel(session, user, job_ref, request=ctx.caller.request)

    job = perform(ctx.deps, ctx.caller, action, work)
    refresh_run_message(ctx, job.run_id)
    run = load_run(ctx, job.run_id)
    if len(run) > 1 and job.status == JobStatus.running:
        stopping = [j for j in run if j.status == JobStatus.running]
        ctx.reply.ephemeral(
            f":hourglass: Stopping the whole run `{short_id(job.run_id)}` on "
            f"{len(stopping)} servers ({_hosts(stopping)}): Ansible runs them together and "
            "can only stop them all. They end within a few seconds.")
    elif len(run) > 1:
        ctx.reply.ephemeral(f":no_entry_sign: Job `{short_id(job.job_id)}` "
                            f"({escape(job_title(job))}) is cancelled; the rest of run "
                            f"`{short_id(job.run_id)}` goes on without it.")
    elif job.status == JobStatus.cancelled:
        ctx.reply.ephemeral(f":no_entry_sign: Job `{short_id(job.job_id)}` "
                            f"({escape(job_title(job))}) is cancelled.")
    else:
        ctx.reply.ephemeral(f":hourglass: Stopping job `{short_id(job.job_id)}` "
                            f"({escape(job_title(job))}); it ends within a few seconds.")


def cancel_run(ctx: Ctx, run_ref: str) -> None:
    """Cancel every unfinished job of a run (the run message's Cancel button)."""
    action = Action("job.cancel", "run", run_ref, audited_by_core=True)

    def work(session: Session, user: Any) -> list[Job]:
        stopped = core_jobs.cancel_run(session, user, run_ref, request=ctx.caller.request)
        for job in stopped:
            _ = (job.playbook, job.server)
        return stopped

    stopped = perform(ctx.deps, ctx.caller, action, work)
    run_id = stopped[0].run_id
    refresh_run_message(ctx, run_id)
    run = load_run(ctx, run_id)
    stopping = [j for j in run if j.status == JobStatus.running]
    note = (" The running servers end within a few seconds." if stopping else "")
    ctx.reply.ephemeral(f":no_entry_sign: Cancelling run `{short_id(run_id)}` on "
                        f"{len(stopped)} servers ({_hosts(stopped)}).{note}")


def retry_job(ctx: Ctx, job_ref: str) -> None:
    """Start the same run again as a new job, any number of times: each click is its own
    request (a resend of the same click finds its retry), and while a retry of the job is
    still in progress, by anyone, another click points at it instead."""
    action = Action("job.retry", "job", job_ref, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        original = core_jobs.get_job(session, job_ref)
        action.resource_id = original.job_id
        return loaded(core_jobs.retry(session, user, original.job_id,
                                      request_key=click_key("retry", ctx),
                                      policy=ctx.deps.policy, request=ctx.caller.request))

    result = perform(ctx.deps, ctx.caller, action, work)
    if result.duplicate and result.already_running and not ctx.redelivered:
        ctx.deps.observer.job_launched("duplicate", len(result.jobs))
        answer_duplicate(ctx, result.jobs, intro=(
            ":repeat: A retry of this job is already in progress; it was not started again:"))
        return
    finish_launch(ctx, result, ctx.caller.channel_id)


def retry_failed_hosts(ctx: Ctx, run_ref: str) -> None:
    """Launch, as a new run, the same playbook, variables and check mode on the servers of
    a finished run that failed or were unreachable; keyed on the click (or command) like
    `retry_job`, so it works any number of times, and a failed host whose retry is still in
    progress is not launched again."""
    action = Action("job.retry", "run", run_ref, audited_by_core=True,
                    details={"failed_hosts": True})

    def work(session: Session, user: Any) -> Any:
        run = core_jobs.get_run(session, run_ref)
        action.resource_id = run[0].run_id
        return loaded(core_jobs.retry_failed(session, user, run[0].run_id,
                                             request_key=click_key("retry-failed", ctx),
                                             policy=ctx.deps.policy,
                                             request=ctx.caller.request))

    result = perform(ctx.deps, ctx.caller, action, work)
    finish_launch(ctx, result, ctx.caller.channel_id)


def click_key(kind: str, ctx: Ctx) -> str | None:
    """The request key of one click or command: Slack's `trigger_id` is new for every
    interaction and the same when that interaction is delivered again."""
    caller = ctx.caller
    return f"{kind}:{caller.team_id}:{caller.trigger_id}" if caller.trigger_id else None


def _hosts(jobs: list[Job]) -> str:
    names = [escape(j.server.hostname) for j in jobs]
    more = f" and {len(names) - NAMED_HOSTS} more" if len(names) > NAMED_HOSTS else ""
    return ", ".join(names[:NAMED_HOSTS]) + more
