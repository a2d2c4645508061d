"""The clock's schedule step: fire the schedules that are due (`fire_schedules`).

Each due schedule is handled in its own transaction by `core.schedules.fire` (one
conditional UPDATE claims the fire, so two clocks never fire it twice). Then, outside the
transaction, its channel (or the jobs channel) gets the run's message with a thread note
saying which schedule fired it and what happened to missed runs — or, when nothing ran,
one message saying why (missed runs skipped, a change freeze, a suspended approval) — and
the run is enqueued (a run the queue could not take stays pending for the requeuer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk import WebClient

from core import jobs as core_jobs
from core import schedules as core_schedules
from core.errors import QueueUnavailable
from core.schedules import FireOutcome
from db.base import utcnow
from slackui.blocks import context, escape, section
from slackui.job_message import run_message
from workers.config import WorkerConfig
from workers.execute import slack_client
from workers.middleware import session_factory
from workers.notifier import SLACK_ERRORS

log = logging.getLogger(__name__)


def fire_schedules(config: WorkerConfig, *, send: Callable[[str], str] | None = None,
                   now: datetime | None = None,
                   client: WebClient | None = None) -> list[FireOutcome]:
    """Fire every schedule due at `now` (default: the current time; tests pass their own
    clock). Returns what each fire did."""
    now = now or utcnow()
    factory = session_factory(config.database_url)
    policy = core_jobs.LaunchPolicy(playbook_dir=config.playbook_dir)
    if client is None and config.slack_token:
        client = slack_client(config.slack_token, config.slack_api_url)
    outcomes: list[FireOutcome] = []
    with factory() as session:
        ids = [s.id for s in core_schedules.due(session, now)]
    for schedule_id in ids:
        with factory() as session:
            schedule = session.get(core_schedules.Schedule, schedule_id)
            if schedule is None:
                continue
            outcome = core_schedules.fire(session, schedule, now, policy=policy)
            if outcome is None:
                session.rollback()
                continue
            if outcome.result is not None:
                for job in outcome.result.jobs:
                    _ = (job.playbook, job.server, job.user)
            _ = (schedule.template.name, schedule.owner.username)
            session.commit()
        outcomes.append(outcome)
        _announce(config, client, factory, outcome)
        if send is not None and outcome.result is not None and not outcome.result.duplicate:
            _enqueue(factory, outcome, send)
    return outcomes


def _channel(config: WorkerConfig, outcome: FireOutcome) -> str | None:
    return outcome.schedule.channel_id or config.jobs_channel


def _announce(config: WorkerConfig, client: WebClient | None, factory, outcome: FireOutcome
              ) -> None:
    channel = _channel(config, outcome)
    if client is None or channel is None:
        return
    schedule = outcome.schedule
    intro = (f":alarm_clock: Schedule *{escape(schedule.name)}* (template "
             f"*{escape(schedule.template.name)}*, due "
             f"{escape(core_schedules.local_text(schedule, outcome.fired_at))})")
    note = " ".join([outcome.note, *outcome.notes]).strip()
    try:
        result = outcome.result
        if result is None or not result.jobs or result.duplicate:
            text = f"{intro}: {note or 'nothing to run.'}"
            client.chat_postMessage(channel=channel, text=text, blocks=[section(text)])
            return
        text, blocks = run_message(result.jobs)
        posted = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        ts = str(posted["ts"])
        with factory() as session:
            for job in result.jobs:
                core_jobs.attach_message(session, job.job_id, str(posted["channel"]), ts)
            session.commit()
        thread = f"{intro} started this run as @{escape(schedule.owner.username)}." + (
            f" {note}" if note else "")
        client.chat_postMessage(channel=str(posted["channel"]), thread_ts=ts, text=thread,
                                blocks=[context(thread)])
    except SLACK_ERRORS as exc:
        log.warning("could not post the run of schedule %s: %s", schedule.name, exc)


def _enqueue(factory, outcome: FireOutcome, send: Callable[[str], str]) -> None:
    assert outcome.result is not None
    with factory() as session:
        job = core_jobs.startable_job(session, outcome.result.run_id)
        if job is None:
            return
        try:
            message_id = send(job.job_id)
        except (QueueUnavailable, OSError) as exc:  # the requeuer sends it later
            log.warning("schedule %s: the queue is unreachable: %s", outcome.schedule.name, exc)
            return
        core_jobs.mark_run_enqueued(session, job.run_id, message_id)
        session.commit()
