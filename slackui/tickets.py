"""Ticket messages: incident tickets (Take / Resolve / Close / Retry) and approval requests
(Approve / Reject), plus the ticket queue list.

`ticket_blocks(ticket)` is also what the worker's notifier posts in a failed job's thread,
so its signature stays stable. A run with several failed hosts gets ONE failure message in
its thread, `failure_message(tickets)`: each ticket keeps its own buttons; past Slack's 50
blocks the rest are listed by id. Every ticket it shows records that message, so Take or
Resolve on one redraws it whole (the handlers draw it again from all of them). For one
ticket it is `ticket_message(ticket)`.

A run with several production servers gets ONE approval card, `run_approval_message`:
which production servers wait, which other servers go with them, and Approve / Reject that
decide them all. While a request waits, its card shows its check-mode preview, if it has
one (`preview_blocks`): "Preview (check mode) running…" until it ended, then the tasks
that would change per host and a diff excerpt; playbook output there is escaped (a code
block) and capped to Slack's limits. Builders read only loaded attributes of the ORM
objects (`Ticket.job`, `Job.playbook/server/user` are joined eagerly) and the preview
summaries handed to them (`core.previews`), and never query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.approvals import decision
from core.previews import PreviewSummary
from core.progress import RunProgress
from db.models import Job, JobStatus, Ticket, TicketKind, TicketPriority, TicketStatus
from slackui import ids
from slackui.blocks import (
    Block,
    actions,
    button,
    code_block,
    confirm_dialog,
    context,
    escape,
    fields,
    header,
    section,
    short_id,
    user_mention,
    when,
)
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks, more_note, take, truncate
from slackui.values import shown_value

PRIORITY_EMOJI = {
    TicketPriority.critical: ":red_circle:",
    TicketPriority.high: ":large_orange_circle:",
    TicketPriority.medium: ":large_yellow_circle:",
    TicketPriority.low: ":white_circle:",
}
STATUS_LABEL = {
    TicketStatus.open: "open",
    TicketStatus.in_progress: "in progress",
    TicketStatus.resolved: "resolved",
    TicketStatus.closed: "closed",
}


def ticket_message(ticket: Ticket) -> tuple[str, list[Block]]:
    """Notification text and blocks for a ticket of either kind."""
    if ticket.kind == TicketKind.approval:
        return approval_message(ticket)
    text = f"Ticket {short_id(ticket.ticket_id)} ({ticket.priority.value}): {escape(ticket.title)}"
    return truncate(text, 300), ticket_blocks(ticket)


def ticket_blocks(ticket: Ticket) -> list[Block]:
    """An incident ticket with the buttons its status allows (Take, Resolve, Close, Retry job)."""
    if ticket.kind == TicketKind.approval:
        return approval_blocks(ticket)
    emoji = PRIORITY_EMOJI.get(ticket.priority, "")
    blocks: list[Block] = [
        section(f"{emoji} *Ticket {short_id(ticket.ticket_id)}* · {escape(ticket.title)}"),
        fields(_ticket_fields(ticket)),
    ]
    if ticket.description:
        blocks.append(section(escape(ticket.description)))
    if ticket.resolution_note:
        blocks.append(section(f"*Resolution:* {escape(ticket.resolution_note)}"))
    buttons = _incident_buttons(ticket)
    if buttons:
        blocks.append(actions(*buttons, block_id=f"ticket:{ticket.ticket_id}"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def _ticket_fields(ticket: Ticket) -> list[tuple[str, str]]:
    pairs = [
        ("Status", STATUS_LABEL.get(ticket.status, ticket.status.value)),
        ("Priority", ticket.priority.value),
        ("Assignee", _person(ticket.assignee) if ticket.assignee else "nobody yet"),
        ("Opened", when(ticket.created_at)),
    ]
    job = ticket.job
    if job is not None:
        pairs.append(("Job", f"`{short_id(job.job_id)}` {escape(job.playbook.name)} on "
                             f"{escape(job.server.hostname)}"))
    if ticket.resolved_at:
        by = f" by {_person(ticket.assignee)}" if ticket.assignee else ""
        pairs.append(("Resolved", f"{when(ticket.resolved_at)}{by}"))
    if ticket.closed_at:
        by = f" by {_person(ticket.closer)}" if ticket.closer else ""
        pairs.append(("Closed", f"{when(ticket.closed_at)}{by}"))
    return pairs


def _incident_buttons(ticket: Ticket) -> list[Block]:
    value = ticket.ticket_id
    buttons: list[Block] = []
    if ticket.status == TicketStatus.open:
        buttons.append(button("Take", ids.ACTION_TICKET_TAKE, value, style="primary"))
    if ticket.status in (TicketStatus.open, TicketStatus.in_progress):
        buttons.append(button("Resolve", ids.ACTION_TICKET_RESOLVE, value))
    if ticket.status != TicketStatus.closed:
        buttons.append(button("Close", ids.ACTION_TICKET_CLOSE, value))
    if ticket.job is not None and ticket.status != TicketStatus.closed:
        buttons.append(button("Retry job", ids.ACTION_JOB_RETRY, ticket.job.job_id))
    return buttons


MAX_FAILURE_TICKETS = 20  # tickets drawn with their buttons in one failure message


def failure_message(tickets: Sequence[Ticket]) -> tuple[str, list[Block]]:
    """One message for the incident tickets of a run's failed hosts (see the module
    docstring); for one ticket exactly `ticket_message(ticket)`."""
    if len(tickets) == 1:
        return ticket_message(tickets[0])
    ordered = sorted(tickets, key=lambda t: (_host(t), t.id or 0))
    hosts = [_host(t) for t in ordered]
    shown, hidden = take(ordered, MAX_FAILURE_TICKETS)
    listing = ", ".join(f"`{escape(h)}`" for h in hosts[:MAX_FAILURE_TICKETS])
    more = f" and {len(hosts) - MAX_FAILURE_TICKETS} more" if hidden else ""
    blocks: list[Block] = [section(
        f":rotating_light: *{len(ordered)} hosts failed* — one ticket each: {listing}{more}.")]
    for ticket in shown:
        blocks.extend(_compact_ticket(ticket))
    if hidden:
        rest = ", ".join(f"`{short_id(t.ticket_id)}` ({escape(_host(t))})"
                         for t in ordered[MAX_FAILURE_TICKETS:])
        blocks.append(context(truncate(f"{more_note(len(hidden), 'more tickets')}: {rest}. "
                                       "`/tickets show &lt;id&gt;` for each.", 2900)))
    first = ordered[0]
    playbook = first.job.playbook.name if first.job is not None else "the run"
    text = f"{len(ordered)} tickets opened: {playbook} failed on {', '.join(hosts)}"
    return truncate(text, 300), cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def _compact_ticket(ticket: Ticket) -> list[Block]:
    """A ticket in two blocks: what failed, who holds it, its buttons."""
    emoji = PRIORITY_EMOJI.get(ticket.priority, "")
    who = f" · {_person(ticket.assignee)}" if ticket.assignee else ""
    status = STATUS_LABEL.get(ticket.status, ticket.status.value)
    text = (f"{emoji} *`{escape(_host(ticket))}`* · Ticket `{short_id(ticket.ticket_id)}` · "
            f"{status}{who}")
    job = ticket.job
    if job is not None and job.error_message:
        text += f"\n{escape(truncate(job.error_message, 300))}"
    if ticket.resolution_note:
        text += f"\n*Resolution:* {escape(truncate(ticket.resolution_note, 300))}"
    blocks: list[Block] = [section(text)]
    buttons = _incident_buttons(ticket)
    if buttons:
        blocks.append(actions(*buttons, block_id=f"ticket:{ticket.ticket_id}"))
    return blocks


def _host(ticket: Ticket) -> str:
    return ticket.job.server.hostname if ticket.job is not None else ticket.title


# approval requests ----------------------------------------------------------------------


def approval_message(ticket: Ticket, *, now: datetime | None = None,
                     previews: Mapping[int, PreviewSummary] | None = None
                     ) -> tuple[str, list[Block]]:
    """The approval request of a production run: what will run where, what its preview says
    it would change (`previews`: by preview job pk, `core.previews.for_tickets`; a ticket
    whose preview is not in it shows it running), and Approve/Reject."""
    job = ticket.job
    what = escape(f"{job.playbook.name} on {job.server.hostname}" if job else ticket.title)
    text = f"Approval needed: {what}"
    if not is_pending_approval(ticket, now=now):
        text = f"Approval request for {what}: {approval_outcome(ticket, now=now)}"
    return truncate(text, 300), approval_blocks(ticket, now=now, previews=previews)


def is_pending_approval(ticket: Ticket, *, now: datetime | None = None) -> bool:
    """Still waiting for a decision: open and not past its expiry."""
    return decision(ticket, now=now) == "pending"


def approval_outcome(ticket: Ticket, *, now: datetime | None = None) -> str:
    """"approved by …", "rejected by …: reason", "expired", "withdrawn" (`core.approvals`)."""
    outcome = decision(ticket, now=now)
    if outcome == "pending":
        return "waiting for an admin"
    by = f" by {_person(ticket.assignee)}" if ticket.assignee else ""
    if outcome == "approved":
        return f"approved{by}"
    if outcome == "rejected":
        note = f": {escape(ticket.resolution_note)}" if ticket.resolution_note else ""
        return f"rejected{by}{note}"
    if outcome == "withdrawn":
        return "withdrawn (the job was cancelled)"
    if outcome == "void":
        return f"void: {escape(ticket.resolution_note or 'the request changed')}"
    return "expired: nobody approved it in time"


def approvals_line(ticket: Ticket) -> str | None:
    """"1 of 2 approvals: @bob" while a request needing several admins waits, else None."""
    needed = ticket.approvals_needed or 1
    given = ticket.approvals or []
    if needed <= 1 or ticket.status != TicketStatus.open:
        return None
    names = ", ".join(_person_entry(a) for a in given) or "none yet"
    return f"{len(given)} of {needed} approvals: {names}"


def _person_entry(entry: dict[str, Any]) -> str:
    return f"@{escape(str(entry.get('username') or '?'))}"


def _approval_header(decided: str | None) -> Block:
    """"Approval needed" while waiting; once decided, withdrawn or expired, what happened."""
    if decided is None:
        return header("Approval needed: production run")
    return header(f"Production run: {decided.split(':')[0].split(' by ')[0]}")


def preview_blocks(tickets: Sequence[Ticket],
                   previews: Mapping[int, PreviewSummary] | None) -> list[Block]:
    """What the check-mode previews of these requests say the run would change: "Preview
    (check mode) running…" until one ended, then per host the tasks that would change and
    an excerpt of the diff (escaped, in a code block). Nothing for requests with no preview.
    """
    linked = [t.preview_job_id for t in tickets if t.preview_job_id is not None]
    if not linked:
        return []
    found = [(previews or {}).get(pk) for pk in linked]
    if any(p is None or not p.done for p in found):
        return [context(":mag: Preview (check mode) running… The card shows what this run "
                        "would change once it ends.")]
    done = [p for p in found if p is not None]
    lines: list[str] = []
    for preview in done:
        host = escape(preview.host)
        if preview.status != JobStatus.success:
            why = escape(truncate(preview.error or preview.status.value, 300))
            lines.append(f"*{host}*: the preview did not finish ({why}); nothing is known of "
                         "what the run would change there.")
            continue
        tasks = preview.changed.get(preview.host, [])
        if not tasks:
            lines.append(f"*{host}*: would change nothing.")
            continue
        shown, hidden = take(tasks, 10)
        names = ", ".join(escape(t) for t in shown) + (f" {more_note(hidden)}" if hidden else "")
        lines.append(f"would change: {len(tasks)} task{'s' if len(tasks) != 1 else ''} on "
                     f"*{host}* — {names}")
    blocks: list[Block] = [section(truncate("*Preview (check mode):* " + "\n".join(lines),
                                            2900))]
    excerpt = [line for p in done for line in p.diff]
    if excerpt:
        total = sum(p.diff_lines for p in done)
        blocks.append(code_block(excerpt, keep="head"))
        if total > len(excerpt):
            blocks.append(context(f"Diff excerpt: the first lines of {total}; the full "
                                  "output is in the thread."))
    return blocks


def approval_blocks(ticket: Ticket, *, now: datetime | None = None,
                    previews: Mapping[int, PreviewSummary] | None = None) -> list[Block]:
    job: Job | None = ticket.job
    pending = is_pending_approval(ticket, now=now)
    blocks: list[Block] = [_approval_header(None if pending else
                                            approval_outcome(ticket, now=now))]
    if job is not None:
        blocks.append(section(
            f"{user_mention(job.user.slack_user_id, job.user.username)} wants to run "
            f"*{escape(job.playbook.name)}* on *{escape(job.server.hostname)}* "
            f"({job.server.environment.value})."))
        pairs = [("Job", f"`{short_id(job.job_id)}`"),
                 ("Check mode", "yes" if job.check_mode else "no")]
        if job.extra_vars:
            shown = ", ".join(f"`{escape(k)}={escape(shown_value(v))}`"
                              for k, v in sorted(job.extra_vars.items()))
            pairs.append(("Variables", shown))
        blocks.append(fields(pairs))
    else:
        blocks.append(section(escape(ticket.title)))
    if is_pending_approval(ticket, now=now):
        blocks.extend(preview_blocks([ticket], previews))
        expires = f"Expires {when(ticket.expires_at)}. " if ticket.expires_at else ""
        counted = approvals_line(ticket)
        if counted:
            blocks.append(section(f"*{counted}*"))
        blocks.append(context(f"{expires}Any admin other than the requester may decide."))
        blocks.append(actions(
            button("Approve", ids.ACTION_APPROVAL_APPROVE, ticket.ticket_id, style="primary",
                   confirm=confirm_dialog("Approve this run?",
                                          "The playbook will run on a production server.",
                                          "Approve")),
            button("Reject", ids.ACTION_APPROVAL_REJECT, ticket.ticket_id, style="danger"),
            block_id=f"approval:{ticket.ticket_id}",
        ))
    else:
        blocks.append(section(f"*Decision:* {approval_outcome(ticket, now=now)}"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def run_approval_message(tickets: Sequence[Ticket], jobs: Sequence[Job], *,
                         now: datetime | None = None,
                         previews: Mapping[int, PreviewSummary] | None = None
                         ) -> tuple[str, list[Block]]:
    """The ONE approval card of a run: its production servers waiting for an admin, the
    other servers that start with them, and Approve / Reject deciding them all.

    tickets: the run's approval tickets (any state); jobs: every job of the run. For a run
    of one job this is exactly `approval_message(ticket)`. previews: as `approval_message`.
    """
    if len(jobs) <= 1 and len(tickets) == 1:
        return approval_message(tickets[0], now=now, previews=previews)
    pending = [t for t in tickets if is_pending_approval(t, now=now)]
    first = jobs[0]
    waiting = [t.job.server.hostname for t in (pending or tickets) if t.job is not None]
    others = [j for j in jobs if j.server.hostname not in waiting
              and j.status != JobStatus.awaiting_approval]
    check = " in check mode" if first.check_mode else ""
    text = (f"{user_mention(first.user.slack_user_id, first.user.username)} wants to run "
            f"*{escape(first.playbook.name)}*{check} on *{len(jobs)} servers*. "
            f"Production, needing approval: {_bold(waiting)}.")
    if others:
        text += (f" Starting with them once decided: {_bold([j.server.hostname for j in others])}"
                 " (a rejection leaves the production servers out).")
    pairs = [("Run", f"`{short_id(first.run_id)}`"),
             ("Check mode", "yes" if first.check_mode else "no")]
    if first.extra_vars:
        pairs.append(("Variables", ", ".join(f"`{escape(k)}={escape(shown_value(v))}`"
                                             for k, v in sorted(first.extra_vars.items()))))
    decided = None if pending else (approval_outcome(tickets[0], now=now) if tickets
                                    else "decided")
    blocks: list[Block] = [_approval_header(decided), section(text), fields(pairs)]
    if pending:
        blocks.extend(preview_blocks(pending, previews))
        expiry = min((t.expires_at for t in pending if t.expires_at), default=None)
        expires = f"Expires {when(expiry)}. " if expiry else ""
        counted = approvals_line(pending[0])
        if counted:
            blocks.append(section(f"*{counted}*"))
        blocks.append(context(f"{expires}Any admin other than the requester may decide; one "
                              f"click decides all {len(pending)} production servers."))
        blocks.append(actions(
            button("Approve", ids.ACTION_APPROVAL_APPROVE, pending[0].ticket_id,
                   style="primary",
                   confirm=confirm_dialog("Approve this run?",
                                          f"The playbook will run on {len(pending)} "
                                          f"production servers ({', '.join(waiting[:10])}"
                                          f"{'…' if len(waiting) > 10 else ''}).", "Approve")),
            button("Reject", ids.ACTION_APPROVAL_REJECT, pending[0].ticket_id, style="danger"),
            block_id=f"approval:{pending[0].ticket_id}",
        ))
        label = f"Approval needed: {first.playbook.name} on {len(jobs)} servers"
    else:
        outcome = approval_outcome(tickets[0], now=now) if tickets else "decided"
        blocks.append(section(f"*Decision:* {outcome}"))
        label = f"Approval request for {first.playbook.name} on {len(jobs)} servers: {outcome}"
    return truncate(label, 300), cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def run_card(jobs: Sequence[Job], tickets: Sequence[Ticket] = (), *,
             now: datetime | None = None, progress: RunProgress | None = None,
             waiting_for: Sequence[str] = (),
             previews: Mapping[int, PreviewSummary] | None = None) -> tuple[str, list[Block]]:
    """The run's one channel message as it stands: its approval card while some job of it
    awaits approval (`tickets`: the run's approval tickets, `core.approvals.run_requests`;
    `previews`: their previews' summaries, `core.previews.for_tickets`),
    else the run message (with the worker's live `progress`, the hosts it is `waiting_for`).
    What `slackui.message_owner` draws."""
    from slackui.job_message import run_message  # job_message stays free of ticket views

    if tickets and any(j.status == JobStatus.awaiting_approval for j in jobs):
        return run_approval_message(tickets, jobs, now=now, previews=previews)
    return run_message(jobs, progress, waiting_for=waiting_for)


def _bold(names: Sequence[str], limit: int = 15) -> str:
    shown = ", ".join(f"*{escape(n)}*" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# lists ------------------------------------------------------------------------------------


def ticket_list_blocks(tickets: Sequence[Ticket], *, title: str = "Ticket queue",
                       limit: int = 20) -> list[Block]:
    """The ticket queue: one line per ticket, most urgent first (as given), capped."""
    shown, hidden = take(tickets, limit)
    blocks: list[Block] = [header(title)]
    if not shown:
        blocks.append(section("No open tickets. :tada:"))
        return blocks
    lines = [ticket_line(t) for t in shown]
    blocks.append(section("\n".join(lines)))
    if hidden:
        blocks.append(context(more_note(hidden, "more tickets")))
    blocks.append(context("`/tickets show &lt;id&gt;` · `/tickets take &lt;id&gt;` · "
                          "`/tickets resolve &lt;id&gt; &lt;note&gt;` · `/tickets close &lt;id&gt;`"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def ticket_line(ticket: Ticket) -> str:
    emoji = PRIORITY_EMOJI.get(ticket.priority, "")
    who = f" · {_person(ticket.assignee)}" if ticket.assignee else ""
    kind = " · approval" if ticket.kind == TicketKind.approval else ""
    return (f"{emoji} `{short_id(ticket.ticket_id)}` {escape(truncate(ticket.title, 120))} "
            f"· {STATUS_LABEL.get(ticket.status, ticket.status.value)}{kind}{who}")


def _person(user: Any) -> str:
    return user_mention(getattr(user, "slack_user_id", None), getattr(user, "username", "?"))
