"""Job flows shared by commands and buttons: show a job, cancel it, retry it, refresh its message.

`/job`, `/cancel-job` and the job message's Show / Cancel / Retry buttons all land here, so a
button and its command behave (and are audited) the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from db import queries
from db.models import Job, JobStatus
from handlers.chat import Action, perform
from handlers.launching import finish_launch, loaded, refresh_job_message
from handlers.listeners import Ctx
from slackui.blocks import short_id
from slackui.jobs import job_details_blocks, job_details_modal, job_title

LOG_TAIL = 20


def load_job_details(ctx: Ctx, job_ref: str, *, action_name: str = "job.show"
                     ) -> tuple[Job, list[str]]:
    """The job `job_ref` names and its last log lines, as the caller (audited)."""
    action = Action(action_name, "job", job_ref)

    def work(session: Session, user: Any) -> tuple[Job, list[str]]:
        permissions.require(user, permissions.JOB_VIEW)
        job = core_jobs.get_job(session, job_ref)
        action.resource_id = job.job_id
        lines: list[str] = []
        if permissions.can(user, permissions.LOG_VIEW):
            lines = [row.content for row in queries.latest_log_lines(session, job.id, LOG_TAIL)]
        return job, lines

    return perform(ctx.deps, ctx.caller, action, work)


def show_job(ctx: Ctx, job_ref: str) -> None:
    """Reply with the job's details (a modal when the request has no reply URL, e.g. Home)."""
    job, lines = load_job_details(ctx, job_ref)
    if ctx.caller.response_url or ctx.caller.channel_id:
        ctx.reply.ephemeral(f"Job {short_id(job.job_id)}: {job_title(job)}",
                            job_details_blocks(job, lines))
    else:
        ctx.client.views_open(trigger_id=ctx.caller.trigger_id,
                              view=job_details_modal(job, lines))


def cancel_job(ctx: Ctx, job_ref: str) -> None:
    """Cancel a job (own: operator; anyone's: admin) and update its message."""
    action = Action("job.cancel", "job", job_ref, audited_by_core=True)

    def work(session: Session, user: Any) -> Job:
        return core_jobs.cancel(session, user, job_ref, request=ctx.caller.request)

    job = perform(ctx.deps, ctx.caller, action, work)
    refresh_job_message(ctx, job)
    if job.status == JobStatus.cancelled:
        ctx.reply.ephemeral(f":no_entry_sign: Job `{short_id(job.job_id)}` "
                            f"({job_title(job)}) is cancelled.")
    else:
        ctx.reply.ephemeral(f":hourglass: Stopping job `{short_id(job.job_id)}` "
                            f"({job_title(job)}); it ends within a few seconds.")


def retry_job(ctx: Ctx, job_ref: str) -> None:
    """Start the same run again as a new job; a second click finds the first retry."""
    action = Action("job.retry", "job", job_ref, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        original = core_jobs.get_job(session, job_ref)
        action.resource_id = original.job_id
        return loaded(core_jobs.retry(session, user, original.job_id,
                                      request_key=f"retry:{original.job_id}",
                                      policy=ctx.deps.policy, request=ctx.caller.request))

    result = perform(ctx.deps, ctx.caller, action, work)
    finish_launch(ctx, result, ctx.caller.channel_id)
