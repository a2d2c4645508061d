"""The launch flow shared by `/run-playbook`, the modal, Retry, Retry failed hosts and Approve.

1. `core.jobs.launch` (or `retry`, `retry_failed`) creates the jobs of one run and their
   audit rows; the transaction commits before anything is posted, so a job the user hears
   about is durable.
2. ONE channel message is posted for the run, however many servers it has: the run
   message (`slackui.job_message.run_message`), or, when some of its jobs need approval,
   the run's approval card with Approve/Reject (it becomes the run message once decided).
   Where the bot cannot post, it goes to the jobs channel or the user's DM and the user is
   told how to fix it. `core.jobs.attach_message` records it on every job of the run.
3. Once none of its jobs awaits approval, the run is enqueued as ONE queue message (for its
   first pending job: the worker runs every pending job of the run from it), recorded on
   all its pending jobs (`core.jobs.mark_run_enqueued`). When the queue is down the jobs
   stay pending, the message says the run will start once the queue is back, and the
   workers' requeuer enqueues it then.
4. A check-safe playbook's production request comes with its preview run (a check-mode
   run of the same request, `core.jobs`): it is enqueued like any pending run, and has no
   message of its own — the worker redraws the approval card with its result.

A repeated request (Slack retry, double click, same trigger) finds its jobs through the
request key: nothing new is created and the user gets a link to the existing message. A
repeated *delivery* of the same request's after-ack work (`ctx.redelivered`: its first
consumer died mid-way) instead finishes what the first left undone — the run message if
none is recorded, the enqueue if the run has no queue message — and answers nothing more.
Redraws after a cancel or a decision draw the RUN message again from all its jobs, through
its one writer (`slackui.message_owner`): a late click never replaces a newer state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import approvals as core_approvals
from core import freezes
from core import jobs as core_jobs
from core.errors import QueueUnavailable
from db.models import Job, JobStatus, Ticket
from db.session import transaction
from handlers import notify
from handlers.chat import Action, perform
from handlers.listeners import Ctx
from handlers.replies import Posted
from slackui import message_owner
from slackui.blocks import escape, short_id
from slackui.job_message import run_message
from slackui.limits import more_note
from slackui.tickets import run_approval_message

log = logging.getLogger(__name__)

QUEUE_DOWN_NOTE = (":warning: The job queue is unreachable right now. The run is saved and "
                   "will start automatically as soon as the queue is back.")
DUPLICATE_LINES = 15


@dataclass
class Announced:
    """What happened to the jobs of one run after they were created."""

    posted: dict[str, Posted] = field(default_factory=dict)  # job uuid -> message
    enqueued: list[str] = field(default_factory=list)
    queue_unavailable: list[str] = field(default_factory=list)


def launch_from_chat(ctx: Ctx, *, playbook: str, target: str, raw_vars: dict[str, str],
                     check_mode: bool, request_key: str, channel_id: str | None,
                     source: str, break_glass: str | None = None) -> None:
    """Create, announce and enqueue the run of one request from Slack (`break_glass`: the
    reason given to launch during a change freeze, see `core.freezes`)."""
    action = Action("job.launch", "playbook", playbook, audited_by_core=True,
                    details={"target": target, "check_mode": check_mode, "source": source})

    def work(session: Session, user: Any) -> Any:
        return loaded(core_jobs.launch(session, user, playbook=playbook, target=target,
                                       raw_vars=raw_vars, check_mode=check_mode,
                                       request_key=request_key, channel_id=channel_id,
                                       policy=ctx.deps.policy, request=ctx.caller.request,
                                       break_glass=break_glass))

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
    """Announce and enqueue the run of a `core.jobs.LaunchResult`, or point at its jobs if
    the request is a repeat."""
    if result.duplicate and ctx.redelivered:
        resume_announcement(ctx, result.jobs, channel_id)
        return None
    if result.duplicate:
        ctx.deps.observer.job_launched("duplicate", len(result.jobs))
        intro = (":repeat: You already have this in progress; it was not started again:"
                 if result.already_running else None)
        answer_duplicate(ctx, result.jobs, intro=intro)
        return None
    tickets = {t.job_id: t for t in result.approval_tickets}
    announced = announce(ctx, result.jobs, channel_id, tickets)
    enqueue_previews(ctx, result)
    if result.already_running:
        answer_duplicate(ctx, result.already_running, intro=(
            ":repeat: You already have this running on some of those servers; "
            "not started again there:"))
    if tickets:
        ctx.deps.observer.job_launched("awaiting_approval", len(tickets))
        others = len(result.jobs) - len(tickets)
        rest = (f" The run's other {others} server{'s' if others != 1 else ''} start with "
                "them once an admin has decided." if others else "")
        ctx.reply.ephemeral(
            f":raised_hand: {_count(len(tickets), 'production job')} "
            f"{'needs' if len(tickets) == 1 else 'need'} the approval of an admin other than "
            f"you. The request is posted with Approve/Reject buttons.{rest} Check mode is not "
            "read-only, so a `--check` run needs approval too, unless its playbook is declared "
            "check-safe.")
    if tickets:
        if any(freezes.is_break_glass(t) for t in tickets.values()):
            ctx.reply.ephemeral(":rotating_light: Break-glass: this run starts only once two "
                                "admins other than you have approved it.")
        notify.approval_requested(ctx, result.jobs, permalink(ctx, result.jobs[0]))
    if announced.enqueued:
        ctx.deps.observer.job_launched("queued", len(announced.enqueued))
    if announced.queue_unavailable:
        ctx.deps.observer.job_launched("queue_unavailable", len(announced.queue_unavailable))
    return announced


def resume_announcement(ctx: Ctx, jobs: Sequence[Job], channel_id: str | None) -> None:
    """Finish announcing the run of `jobs` where an interrupted delivery left it: post its
    message if none is recorded, and enqueue it (as `announce` does) if none of its pending
    jobs has a queue message yet. Says nothing to the user otherwise."""
    if not jobs:
        return
    run = load_run(ctx, jobs[0].run_id)
    if not any(j.slack_channel_id and j.slack_message_ts for j in run):
        with ctx.deps.session_factory() as session:
            tickets = core_approvals.run_requests(session, run[0].run_id)
            for ticket in tickets:
                _ = (ticket.job, ticket.assignee, ticket.creator)
            pending = {t.job_id: t for t in tickets
                       if any(j.id == t.job_id and j.status == JobStatus.awaiting_approval
                              for j in run)}
        announced = announce(ctx, run, channel_id, pending, enqueue=False)
    else:
        announced = Announced()
    if (not any(j.status == JobStatus.awaiting_approval for j in run)
            and not any(j.status == JobStatus.pending and j.dramatiq_message_id for j in run)):
        enqueue_run(ctx, run, announced)


def announce(ctx: Ctx, jobs: Sequence[Job], channel_id: str | None,
             approvals: Mapping[int, Ticket] | None = None, *,
             enqueue: bool = True) -> Announced:
    """Post the run's one message, record it on every job, and enqueue the run unless some
    of its jobs await approval.

    approvals: the approval ticket by job primary key, for jobs awaiting approval: the
    message is then the run's approval card (it becomes the run message once decided).
    """
    approvals = approvals or {}
    announced = Announced()
    if not jobs:
        return announced
    tickets = list(approvals.values())
    text, blocks = run_approval_message(tickets, jobs) if tickets else run_message(jobs)
    try:
        posted = ctx.reply.post(channel_id, text, blocks)
    except (SlackApiError, OSError) as exc:
        # Slack down or refusing: the run must still start; its message is simply missing.
        log.warning("could not post the message of run %s: %s", jobs[0].run_id, exc)
    else:
        with transaction(ctx.deps.session_factory) as session:
            for job in jobs:
                announced.posted[job.job_id] = posted
                core_jobs.attach_message(session, job.job_id, posted.channel, posted.ts)
                job.slack_channel_id, job.slack_message_ts = posted.channel, posted.ts
            for ticket in tickets:
                remember_ticket_message(session, ticket.id, posted)
    if enqueue and not any(j.status == JobStatus.awaiting_approval for j in jobs):
        enqueue_run(ctx, jobs, announced)
    return announced


def enqueue_previews(ctx: Ctx, result: Any) -> None:
    """Enqueue the preview run of a new launch (`LaunchResult.previews`), after its approval
    card is posted (the worker redraws the card with the preview's result). A queue that is
    down leaves it pending for the requeuer; nothing is posted about it."""
    if not result.previews:
        return
    previews = list(result.previews)
    try:
        message_id = ctx.deps.queue.enqueue(previews[0].job_id)
    except QueueUnavailable as exc:
        log.warning("queue unavailable, preview run %s stays pending: %s", previews[0].run_id,
                    exc)
        return
    with transaction(ctx.deps.session_factory) as session:
        core_jobs.mark_run_enqueued(session, previews[0].run_id, message_id)


def enqueue_run(ctx: Ctx, jobs: Sequence[Job], announced: Announced) -> None:
    """Hand a run to the queue as one message (for its first pending job) and record it on
    all its pending jobs; on QueueUnavailable leave them pending and say so."""
    pending = sorted((j for j in jobs if j.status == JobStatus.pending),
                     key=lambda j: (j.server_id, j.id))
    if not pending:
        return
    first = pending[0]
    try:
        message_id = ctx.deps.queue.enqueue(first.job_id)
    except QueueUnavailable as exc:
        log.warning("queue unavailable, run %s stays pending: %s", first.run_id, exc)
        announced.queue_unavailable = [j.job_id for j in pending]
        _show_queue_down(ctx, jobs, announced.posted.get(first.job_id))
        return
    with transaction(ctx.deps.session_factory) as session:
        core_jobs.mark_run_enqueued(session, first.run_id, message_id)
    announced.enqueued = [j.job_id for j in pending]


def _show_queue_down(ctx: Ctx, jobs: Sequence[Job], posted: Posted | None) -> None:
    if posted is not None:
        redraw_run(ctx, jobs[0].run_id, note=QUEUE_DOWN_NOTE)
        return
    try:
        ctx.reply.ephemeral(f"Run `{short_id(jobs[0].run_id)}`: {QUEUE_DOWN_NOTE}")
    except (SlackApiError, OSError) as exc:
        log.warning("could not show that run %s waits for the queue: %s", jobs[0].run_id, exc)


def start_run(ctx: Ctx, run_id: str) -> Announced:
    """A run whose approvals were decided: its approval card becomes the run message, and
    it is enqueued if something of it is left to run."""
    jobs = load_run(ctx, run_id)
    announced = Announced()
    if not jobs:
        return announced
    first = jobs[0]
    if not (first.slack_channel_id and first.slack_message_ts):
        return announce(ctx, jobs, ctx.caller.channel_id)
    for job in jobs:
        announced.posted[job.job_id] = Posted(first.slack_channel_id, first.slack_message_ts)
    draw_run(ctx, jobs)
    if not any(j.status == JobStatus.awaiting_approval for j in jobs):
        enqueue_run(ctx, jobs, announced)
    if announced.enqueued:
        ctx.deps.observer.job_launched("queued", len(announced.enqueued))
    if announced.queue_unavailable:
        ctx.deps.observer.job_launched("queue_unavailable", len(announced.queue_unavailable))
    return announced


def load_run(ctx: Ctx, run_id: str) -> list[Job]:
    """Every job of the run as last committed, ready for its message."""
    with ctx.deps.session_factory() as session:
        jobs = core_jobs.run_jobs(session, run_id)
        for job in jobs:
            _ = (job.playbook, job.server, job.user)
        return jobs


def refresh_job_message(ctx: Ctx, job: Job) -> None:
    """Redraw the channel message of the job's run from the current state of all its jobs."""
    refresh_run_message(ctx, job.run_id)


def refresh_run_message(ctx: Ctx, run_id: str) -> None:
    """Redraw a run's channel message (if it has one) from all its jobs."""
    redraw_run(ctx, run_id)


def draw_run(ctx: Ctx, jobs: Sequence[Job]) -> None:
    """Redraw the message of these jobs' run (from the run as the database now holds it)."""
    if jobs:
        redraw_run(ctx, jobs[0].run_id)


def redraw_run(ctx: Ctx, run_id: str, *, note: str | None = None) -> None:
    """Ask the run message's one writer (`slackui.message_owner`) to draw it from the
    run's current state: the run message, or the approval card while some of its jobs
    await a decision; a stale drawing never replaces a newer one."""
    try:
        message_owner.redraw(ctx.client, ctx.deps.session_factory, run_id, note=note)
    except (SlackApiError, OSError) as exc:
        log.warning("could not update the message of run %s: %s", run_id, exc)


def answer_duplicate(ctx: Ctx, jobs: Sequence[Job], *, intro: str | None = None) -> None:
    """Tell the user this request already created jobs, with links to their messages."""
    lines = []
    links: dict[str, str | None] = {}  # one permalink per run message
    for job in jobs[:DUPLICATE_LINES]:
        if job.run_id not in links:
            links[job.run_id] = permalink(ctx, job)
        link = links[job.run_id]
        what = (f"`{short_id(job.job_id)}` {escape(job.playbook.name)} on "
                f"{escape(job.server.hostname)} ({job.status.value.replace('_', ' ')})")
        lines.append(f"• <{link}|{what}>" if link else f"• {what}")
    if len(jobs) > DUPLICATE_LINES:
        lines.append(more_note(len(jobs) - DUPLICATE_LINES, "more jobs"))
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

