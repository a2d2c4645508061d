"""The order of a run's Slack message: which state of the run was last drawn on it.

A run has one channel message, and several processes change the run: the Slack app
(cancel, approve, reject), the worker (claim, progress, ending), the clock (reaper,
approval expiry). Their Slack calls arrive in any order, so the message is ordered by the
database, not by who calls last:

- every change of a job's status or cancel request grows its `jobs.state_version` by one
  in the UPDATE that makes it (`db.models.job_values`); a run's **state version** is the
  sum over its jobs, read in the same SELECT as the state it describes (`run_state`), so
  it grows with every change of any job of the run and names exactly one state;
- the run's first job (lowest id) keeps `message_version`, the state version last drawn
  on the message. Before its chat.update a writer `claim`s the version it rendered: a
  compare-and-set that fails when a newer state has been claimed, so a stale rendering is
  never sent; after its call it reads `drawn` again: a newer version claimed meanwhile
  means its own call may have landed after the newer one, and it draws again.

Drawing the same version twice is allowed (the worker's live progress changes the message,
not the run's state). Plain functions; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.jobs import run_jobs
from db.models import Job


@dataclass(frozen=True)
class RunState:
    """The jobs of a run as one SELECT read them, and the state version they make."""

    jobs: Sequence[Job]
    version: int

    @property
    def first_pk(self) -> int:
        """The job that keeps the run's `message_version`."""
        return min(job.id for job in self.jobs)

    @property
    def message(self) -> tuple[str, str] | None:
        """(channel, ts) of the run's Slack message, if it has one."""
        for job in self.jobs:
            if job.slack_channel_id and job.slack_message_ts:
                return job.slack_channel_id, job.slack_message_ts
        return None


def state_version(jobs: Sequence[Job]) -> int:
    """The state version of a run made of these jobs (as read together)."""
    return sum(job.state_version or 0 for job in jobs)


def run_state(session: Session, run_id: str) -> RunState | None:
    """Every job of the run with its state version; None for an unknown run."""
    jobs = run_jobs(session, run_id)
    if not jobs:
        return None
    return RunState(jobs=jobs, version=state_version(jobs))


def claim(session: Session, first_pk: int, version: int) -> bool:
    """Record that the run's message is being drawn at `version`; False (nothing changes)
    when a newer version is already drawn or being drawn."""
    drawn_now = drawn(session, first_pk)
    if drawn_now is None or drawn_now > version:
        return False
    if drawn_now == version:
        return True
    won = session.execute(
        update(Job).where(Job.id == first_pk, Job.message_version <= version)
        .values(message_version=version)
        .execution_options(synchronize_session=False)
    ).rowcount
    return won == 1


def drawn(session: Session, first_pk: int) -> int | None:
    """The state version last claimed for the run's message (None: no such job)."""
    return session.execute(
        select(Job.message_version).where(Job.id == first_pk)
    ).scalar_one_or_none()
