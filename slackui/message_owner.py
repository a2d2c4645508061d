"""The one writer of a run's channel message: every redraw of it goes through `redraw`.

Whoever changed a run — the Slack app after a cancel, an approval decision or a queue
outage, the worker's notifier (progress, ending), the worker that finds a server busy
("waiting for"), the clock (reaper, approval expiry) — only *asks* for a redraw. `redraw`
then reads the run's current state from the database, renders it (`slackui.tickets.
run_card`: the approval card while a job awaits approval, else the run message) and writes
it with chat.update, ordered by the run's state version (`core.run_messages`):

- a rendering is sent only after it claimed its version, which fails once a newer state
  has been claimed: a late or stale redraw (a slow worker update, an Approve clicked on a
  job cancelled meanwhile) never replaces a newer message;
- after the call, a newer version claimed meanwhile means this call may have reached
  Slack after the newer one: the run is read and drawn again, so the last call to land
  is always one of the newest state.

An approval card also shows its request's check-mode preview as the database holds it
(`core.previews.for_tickets`, from the preview's stored output): the worker that ends a
preview asks for a redraw of the approval's run, which draws the same state version again.

What the database does not hold is passed in as decoration of the current state: the
worker's live `progress`, the hosts a pending run is `waiting_for`, a `note` (the queue is
down) shown while the run is pending. Slack errors reach the caller (each has its own
policy for them); a database error is logged and the redraw skipped (the next one draws
the state then current).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core import approvals, previews, run_messages
from core.previews import PreviewSummary
from core.progress import RunProgress
from db.models import Job, JobStatus, Ticket
from slackui.blocks import Block, context
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks
from slackui.tickets import run_card

log = logging.getLogger(__name__)

MAX_ROUNDS = 4  # draws of one request; each further one needs a newer claim meanwhile


@dataclass(frozen=True)
class RunView:
    """What one read of the database says the run's message must show."""

    jobs: Sequence[Job]
    tickets: Sequence[Ticket]
    version: int
    previews: Mapping[int, PreviewSummary]
    first_pk: int
    message: tuple[str, str] | None


def read_run(factory: sessionmaker[Session], run_id: str) -> RunView | None:
    """The run's jobs (and approval tickets while a job awaits approval, with the summaries
    of their check-mode previews, `core.previews`) with their state version, loaded for
    rendering; None for an unknown run."""
    with factory() as session:
        state = run_messages.run_state(session, run_id)
        if state is None:
            return None
        for job in state.jobs:
            _ = (job.playbook, job.server, job.user)
        tickets: list[Ticket] = []
        summaries: dict[int, PreviewSummary] = {}
        if any(j.status == JobStatus.awaiting_approval for j in state.jobs):
            tickets = approvals.run_requests(session, run_id)
            for ticket in tickets:
                _ = (ticket.job, ticket.assignee, ticket.creator)
            summaries = previews.for_tickets(session, tickets)
        return RunView(jobs=state.jobs, tickets=tickets, version=state.version,
                       first_pk=state.first_pk, message=state.message, previews=summaries)


def render(view: RunView, *, progress: RunProgress | None = None,
           waiting_for: Sequence[str] = (), note: str | None = None
           ) -> tuple[str, list[Block]]:
    """The message of the run as `view` holds it, with the decorations (module docstring)."""
    text, blocks = run_card(view.jobs, view.tickets, progress=progress,
                            waiting_for=waiting_for, previews=view.previews)
    if note and any(j.status == JobStatus.pending for j in view.jobs):
        blocks = cap_blocks([*blocks, context(note)], MAX_MESSAGE_BLOCKS)
    return text, blocks


def redraw(client: Any, factory: sessionmaker[Session], run_id: str, *,
           progress: RunProgress | None = None, waiting_for: Sequence[str] = (),
           note: str | None = None, message: tuple[str, str] | None = None) -> bool:
    """Draw the run's message from its current state; True when this call drew it.

    client: a slack_sdk WebClient (its `chat_update` is called). message: (channel, ts)
    when the caller knows it better than the jobs' rows (the notifier that just posted
    it). False: the run has no message, a newer state is drawn by another writer, or the
    database could not be read. Raises what `client.chat_update` raises.
    """
    for _ in range(MAX_ROUNDS):
        try:
            view = read_run(factory, run_id)
            where = message or (view.message if view else None)
            if view is None or where is None:
                return False
            text, blocks = render(view, progress=progress, waiting_for=waiting_for,
                                  note=note)
            with factory.begin() as session:
                if not run_messages.claim(session, view.first_pk, view.version):
                    log.debug("run %s: state %s is older than the one drawn; not drawn",
                              run_id, view.version)
                    return False
        except SQLAlchemyError as exc:
            log.warning("run %s: its message was not redrawn (database: %s)", run_id, exc)
            return False
        client.chat_update(channel=where[0], ts=where[1], text=text, blocks=blocks)
        try:
            with factory() as session:
                latest = run_messages.drawn(session, view.first_pk)
        except SQLAlchemyError as exc:
            log.warning("run %s: could not check its message was the newest (%s)", run_id, exc)
            return True
        if latest is None or latest <= view.version:
            return True
        log.debug("run %s: state %s was claimed while %s was drawn; drawing again",
                  run_id, latest, view.version)
    log.warning("run %s: its state kept changing while its message was drawn", run_id)
    return True


def is_run_message(job: Job | None, channel: str | None, ts: str | None) -> bool:
    """Whether the Slack message (channel, ts) is the job's run message (an approval request
    is posted as its run's card): then only `redraw` may draw it."""
    return (job is not None and bool(ts)
            and (job.slack_channel_id, job.slack_message_ts) == (channel, ts))
