"""Periodic work that keeps jobs from getting stuck or lost, and old logs from piling up.

- `reap`: running jobs whose heartbeat stopped (their worker was killed) end `failed`
  with a clear reason and an incident ticket, shown in their Slack message and thread.
  They are never run again.
- `requeue`: pending jobs whose message never reached the queue (Redis down at launch), was
  lost with it (the queue's epoch changed: Redis restarted or was flushed) or died after a
  worker took it are sent again — once, by one clock; a job merely waiting behind a backlog
  is left alone (`core.execution.requeue_candidates`).
- `expire_approvals`: approval requests past their deadline expire (their message says so).
- `archive_logs`: job_logs past retention go to compressed files (`workers.retention`),
  by one clock at a time (a lease in the database).

Every comparison of times uses the database's clock. Two clocks are safe: every step is a
conditional UPDATE only one of them wins, and only the winner posts to Slack.

The clock process (`workers.main.run_clock`) and the embedded runner call these directly;
the housekeeping actors call them through the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import dramatiq
import redis
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from core import execution, previews
from core.approvals import expire_overdue, runs_to_start
from core.clock_state import note_queue_epoch
from core.errors import QueueUnavailable
from core.jobs import mark_run_enqueued
from db.base import utcnow
from db.clock import now as db_time
from slackui.message_owner import is_run_message
from slackui.tickets import approval_message, ticket_message
from workers.config import WorkerConfig
from workers.execute import read_run_log, record_ticket_message, slack_client
from workers.middleware import session_factory
from workers.notifier import SLACK_ERRORS, post_in_thread, preview_finished, redraw_run
from workers.queue_epoch import queue_epoch
from workers.retention import RetentionResult, archive_old_logs, cutoff_for

log = logging.getLogger(__name__)


def _client(config: WorkerConfig) -> WebClient | None:
    return slack_client(config.slack_token, config.slack_api_url) if config.slack_token else None


def reap(config: WorkerConfig) -> list[str]:
    """End jobs whose worker died; return their job ids."""
    factory = session_factory(config.database_url)
    with factory() as session:
        reaped = execution.reap_stale(session, grace=timedelta(seconds=config.reaper_grace))
        notes = [(job, execution.incident_for(session, job)) for job in reaped]
        previewed = previews.previewed_tickets(session, [job.id for job in reaped])
        session.commit()
    client = _client(config)
    if client is not None and previewed:
        # a reaped preview has no message of its own: its approval card says how it ended
        preview_pks = sorted({t.preview_job_id for t in previewed if t.preview_job_id})
        preview_finished(client, factory, previewed,
                         full_log=lambda: read_run_log(factory, preview_pks,
                                                       multi=len(preview_pks) > 1))
    drawn: set[str] = set()
    for job, ticket in notes:
        log.warning("job %s reaped: %s", job.job_id, job.error_message)
        if client is None:
            continue
        if job.run_id not in drawn:  # the run's one message, drawn by its owner
            drawn.add(job.run_id)
            redraw_run(client, factory, job.run_id)
        if ticket is not None:
            post_in_thread(client, job, ticket_message(ticket),
                           on_posted=lambda channel, ts, tid=ticket.ticket_id:
                           record_ticket_message(factory, tid, channel, ts))
    return [job.job_id for job, _ in notes]


def requeue(config: WorkerConfig, *, send: Callable[[str], str]) -> list[str]:
    """Send pending jobs again whose message never arrived or was lost; return their ids.

    One message per run; a run another clock is sending right now is skipped. Stops at the
    first broker error (Redis still down: the next pass tries again).
    """
    factory = session_factory(config.database_url)
    sent: list[str] = []
    with factory() as session:
        lost_at = _broker_lost_at(config, session)
        candidates = execution.requeue_candidates(
            session, min_age=timedelta(seconds=config.requeue_after),
            lost_after=timedelta(seconds=config.requeue_lost_after), broker_lost_at=lost_at)
        session.commit()
        runs: set[str] = set()
        for job in candidates:
            if job.run_id in runs:  # one message runs the whole run
                continue
            runs.add(job.run_id)
            if not execution.claim_requeue(session, job):
                session.rollback()  # another clock sends it
                continue
            try:
                message_id = send(job.job_id)
            except (QueueUnavailable, redis.RedisError, dramatiq.errors.BrokerError,
                    OSError) as exc:
                session.rollback()
                log.warning("requeue: the queue is still unreachable: %s", exc)
                break
            execution.record_requeued(session, job.run_id, message_id)
            session.commit()
            sent.append(job.job_id)
            log.info("requeued pending job %s (message %s)", job.job_id, message_id)
    return sent


def _broker_lost_at(config: WorkerConfig, session: Session) -> datetime | None:
    """When the queue last lost its data, as far as the clocks saw (None: unknown, e.g.
    Redis unreachable right now)."""
    try:
        epoch = queue_epoch(config.redis_url)
    except (redis.RedisError, OSError) as exc:
        log.warning("requeue: cannot read the queue's epoch: %s", exc)
        return None
    return note_queue_epoch(session, epoch)


def expire_approvals(config: WorkerConfig, *,
                     send: Callable[[str], str] | None = None) -> int:
    """Expire overdue approval requests and update their Slack messages; return how many.

    send: enqueues a job; the rest of each run whose approvals expired (its servers that
    needed none) is started with it (else the requeuer sends it later).
    """
    factory = session_factory(config.database_url)
    with factory() as session:
        tickets = expire_overdue(session, utcnow())
        session.commit()
        if send is not None:
            for job in runs_to_start(session, tickets):
                try:
                    mark_run_enqueued(session, job.run_id, send(job.job_id))
                    session.commit()
                except (QueueUnavailable, redis.RedisError, dramatiq.errors.BrokerError,
                        OSError) as exc:
                    log.warning("expiry: the queue is unreachable (the requeuer sends the "
                                "run later): %s", exc)
                    break
        client = _client(config)
        if client is None:
            return len(tickets)
        drawn: set[str] = set()
        for ticket in tickets:
            job = ticket.job
            if (ticket.slack_channel_id and ticket.slack_message_ts and not is_run_message(
                    job, ticket.slack_channel_id, ticket.slack_message_ts)):
                text, blocks = approval_message(ticket)  # a message of the request alone
                try:
                    client.chat_update(channel=ticket.slack_channel_id,
                                       ts=ticket.slack_message_ts, text=text, blocks=blocks)
                except SLACK_ERRORS as exc:
                    log.warning("could not update expired approval %s: %s",
                                ticket.ticket_id, exc)
            if job is not None and job.run_id not in drawn:
                drawn.add(job.run_id)
                redraw_run(client, factory, job.run_id)
    return len(tickets)


def archive_logs(config: WorkerConfig) -> RetentionResult:
    """Archive job_logs older than the retention period; archive finished old jobs. One
    clock at a time (`workers.retention`); another finds the lease taken and does nothing."""
    factory = session_factory(config.database_url)
    with factory() as session:
        now = db_time(session)
    return archive_old_logs(factory, config.archive_dir,
                            older_than=cutoff_for(config.log_retention_days, now=now))
