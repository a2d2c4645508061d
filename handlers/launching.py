"""The launch flow shared by `/run-playbook`, the modal, Retry and Approve.

1. `core.jobs.launch` (or `retry`) creates the jobs and their audit row; the transaction
   commits before anything is posted, so a job the user hears about is durable.
2. Each job's message is posted in the channel (a production job gets its approval request
   with Approve/Reject instead); where the bot cannot post, it goes to the jobs channel or
   the user's DM and the user is told how to fix it. `core.jobs.attach_message` records it.
3. Each pending job is enqueued and `core.jobs.mark_enqueued` stores the message id. When
   the queue is down the job stays pending, its message says it will start once the queue
   is back, and the workers' requeuer enqueues it then.

A repeated request (Slack retry, double click, same trigger) finds its jobs through the
request key: nothing new is created and the user gets a link to the existing job message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core.errors import QueueUnavailable
from db.models import Job, JobStatus, Ticket
from db.session import transaction
from handlers.chat import Action, perform
from handlers.listeners import Ctx
from handlers.replies import Posted
from slackui.blocks import context, escape, short_id
from slackui.job_message import job_message
from slackui.tickets import approval_message

log = logging.getLogger(__name__)

QUEUE_DOWN_NOTE = (":warning: The job queue is unreachable right now. The job is saved and "
                   "will start automatically as soon as the queue is back.")


@dataclass
class Announced:
    """What happened to the jobs of one launch after they were created."""

    posted: dict[str, Posted] = field(default_factory=dict)  # job uuid -> message
    enqueued: list[str] = field(default_factory=list)
    queue_unavailable: list[str] = field(default_factory=list)


def launch_from_chat(ctx: Ctx, *, playbook: str, target: str, raw_vars: dict[str, str],
                     check_mode: bool, request_key: str, channel_id: str | None,
                     source: str) -> None:
    """Create, announce and enqueue the jobs of one run request from Slack."""
    action = Action("job.launch", "playbook", playbook, audited_by_core=True,
                    details={"target": target, "check_mode": check_mode, "source": source})

    def work(session: Session, user: Any) -> Any:
        return loaded(core_jobs.launch(session, user, playbook=playbook, target=target,
                                       raw_vars=raw_vars, check_mode=check_mode,
                                       request_key=request_key, channel_id=channel_id,
                                       policy=ctx.deps.policy, request=ctx.caller.request))

    result = perform(ctx.deps, ctx.caller, action, work)
    finish_launch(ctx, result, channel_id)


def loaded(result: Any) -> Any:
    """Load, while the session is open, what the messages of a LaunchResult will read."""
    for ticket in result.approval_tickets:
        _ = (ticket.job, ticket.assignee, ticket.creator)
    for job in [*result.jobs, *result.already_running]:
        _ = (job.playbook, job.server, job.user)
    return result


def finish_launch(ctx: Ctx, result: Any, channel_id: str | None) -> Announced | None:
    """Announce and enqueue the jobs of a `core.jobs.LaunchResult`, or point at them if the
    request is a repeat."""
    if result.duplicate:
        ctx.deps.observer.job_launched("duplicate", len(result.jobs))
        intro = (":repeat: You already have this in progress; it was not started again:"
                 if result.already_running else None)
        answer_duplicate(ctx, result.jobs, intro=intro)
        return None
    tickets = {t.job_id: t for t in result.approval_tickets}
    announced = announce(ctx, result.jobs, channel_id, tickets)
    if result.already_running:
        answer_duplicate(ctx, result.already_running, intro=(
            ":repeat: You already have this running on some of those servers; "
            "not started again there:"))
    if tickets:
        ctx.deps.observer.job_launched("awaiting_approval", len(tickets))
        ctx.reply.ephemeral(
            f":raised_hand: {_count(len(tickets), 'production job')} "
            f"{'needs' if len(tickets) == 1 else 'need'} the approval of an admin other than "
            "you. The request is posted with Approve/Reject buttons. `--check` runs need no "
            "approval.")
    if announced.enqueued:
        ctx.deps.observer.job_launched("queued", len(announced.enqueued))
    if announced.queue_unavailable:
        ctx.deps.observer.job_launched("queue_unavailable", len(announced.queue_unavailable))
    return announced


def announce(ctx: Ctx, jobs: Sequence[Job], channel_id: str | None,
             approvals: Mapping[int, Ticket] | None = None) -> Announced:
    """Post each job's first message, record where it is, and enqueue the pending ones.

    approvals: the approval ticket by job primary key, for jobs awaiting approval: their
    message is the approval request (it becomes the job message once approved).
    """
    approvals = approvals or {}
    announced = Announced()
    channel = channel_id
    for job in jobs:
        ticket = approvals.get(job.id)
        text, blocks = approval_message(ticket) if ticket is not None else job_message(job)
        try:
            posted = ctx.reply.post(channel, text, blocks)
        except (SlackApiError, OSError) as exc:
            # Slack down or refusing: the job must still run; its message is simply missing.
            log.warning("could not post the message of job %s: %s", job.job_id, exc)
            continue
        channel = posted.channel  # after a redirect, the rest go straight to the fallback
        announced.posted[job.job_id] = posted
    if announced.posted:
        with transaction(ctx.deps.session_factory) as session:
            for job in jobs:
                posted = announced.posted.get(job.job_id)
                if posted is None:
                    continue
                core_jobs.attach_message(session, job.job_id, posted.channel, posted.ts)
                ticket = approvals.get(job.id)
                if ticket is not None:
                    remember_ticket_message(session, ticket.id, posted)
    pending = [j for j in jobs if j.status == JobStatus.pending]
    enqueue_jobs(ctx, pending, announced)
    return announced


def enqueue_jobs(ctx: Ctx, jobs: Sequence[Job], announced: Announced) -> None:
    """Hand pending jobs to the queue; on QueueUnavailable leave them pending and say so."""
    message_ids: dict[str, str] = {}
    for index, job in enumerate(jobs):
        try:
            message_ids[job.job_id] = ctx.deps.queue.enqueue(job.job_id)
        except QueueUnavailable as exc:
            log.warning("queue unavailable, job %s stays pending: %s", job.job_id, exc)
            announced.queue_unavailable = [j.job_id for j in jobs[index:]]
            break
    if message_ids:
        with transaction(ctx.deps.session_factory) as session:
            for job_id, message_id in message_ids.items():
                core_jobs.mark_enqueued(session, job_id, message_id)
        announced.enqueued = list(message_ids)
    for job in jobs:
        if job.job_id in announced.queue_unavailable:
            _show_queue_down(ctx, job, announced.posted.get(job.job_id))


def _show_queue_down(ctx: Ctx, job: Job, posted: Posted | None) -> None:
    text, blocks = job_message(job)
    blocks = [*blocks, context(QUEUE_DOWN_NOTE)]
    try:
        if posted is not None:
            ctx.client.chat_update(channel=posted.channel, ts=posted.ts, text=text,
                                   blocks=blocks)
        else:
            ctx.reply.ephemeral(f"Job `{short_id(job.job_id)}`: {QUEUE_DOWN_NOTE}")
    except (SlackApiError, OSError) as exc:
        log.warning("could not show that job %s waits for the queue: %s", job.job_id, exc)


def start_approved(ctx: Ctx, job: Job) -> Announced:
    """An approved job: its approval request message becomes the job message, then enqueue."""
    if not (job.slack_channel_id and job.slack_message_ts):
        return announce(ctx, [job], ctx.caller.channel_id)
    announced = Announced()
    announced.posted[job.job_id] = Posted(job.slack_channel_id, job.slack_message_ts)
    refresh_job_message(ctx, job)
    enqueue_jobs(ctx, [job], announced)
    if announced.enqueued:
        ctx.deps.observer.job_launched("queued")
    if announced.queue_unavailable:
        ctx.deps.observer.job_launched("queue_unavailable")
    return announced


def refresh_job_message(ctx: Ctx, job: Job) -> None:
    """Redraw the job's channel message from its current state (if it has one)."""
    if not job.slack_channel_id or not job.slack_message_ts:
        return
    text, blocks = job_message(job)
    try:
        ctx.client.chat_update(channel=job.slack_channel_id, ts=job.slack_message_ts,
                               text=text, blocks=blocks)
    except (SlackApiError, OSError) as exc:
        log.warning("could not update the message of job %s: %s", job.job_id, exc)


def answer_duplicate(ctx: Ctx, jobs: Sequence[Job], *, intro: str | None = None) -> None:
    """Tell the user this request already created jobs, with links to their messages."""
    lines = []
    for job in jobs:
        link = permalink(ctx, job)
        what = (f"`{short_id(job.job_id)}` {escape(job.playbook.name)} on "
                f"{escape(job.server.hostname)} ({job.status.value.replace('_', ' ')})")
        lines.append(f"• <{link}|{what}>" if link else f"• {what}")
    ctx.reply.ephemeral((intro or ":repeat: This request was already received; it started:")
                        + "\n" + "\n".join(lines))


def permalink(ctx: Ctx, job: Job) -> str | None:
    """A link to the job's message, if it has one Slack can resolve."""
    with ctx.deps.session_factory() as session:
        fresh = session.scalar(select(Job).where(Job.job_id == job.job_id))
        channel, ts = (fresh.slack_channel_id, fresh.slack_message_ts) if fresh else (None, None)
    if not channel or not ts:
        return None
    try:
        return ctx.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"]
    except (SlackApiError, OSError) as exc:
        log.info("no permalink for job %s: %s", job.job_id, exc)
        return None


def remember_ticket_message(session: Session, ticket_pk: int, posted: Posted) -> None:
    """Record where a ticket's message is, so later decisions update it in place."""
    ticket = session.get(Ticket, ticket_pk)
    if ticket is not None:
        ticket.slack_channel_id = posted.channel
        ticket.slack_message_ts = posted.ts


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}" if n != 1 else f"The {noun}"
