"""The clock's notification step: tell people and channels that jobs ended
(`notify_endings`), as their settings ask (`core.notifications`: `job_ended` to the
requester, `job_failed` to those whose environment/playbook filters match, channel routes).

Only jobs that ended within `WINDOW` before `now` are considered (turning the step on does
not replay history). Each delivery first inserts its unique `notification_log.event_key`
(in a savepoint): two clocks, or a pass run twice, never send one notification twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import notifications
from db.base import utcnow
from db.models import Job, JobStatus, NotificationLog
from db.session import savepoint
from slackui.blocks import escape, short_id
from workers.config import WorkerConfig
from workers.execute import slack_client
from workers.middleware import session_factory
from workers.notifier import SLACK_ERRORS

log = logging.getLogger(__name__)
WINDOW = timedelta(minutes=15)
ENDED = (JobStatus.success, JobStatus.failed, JobStatus.cancelled)
EMOJI = {"success": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}


def notify_endings(config: WorkerConfig, *, now: datetime | None = None,
                   client: WebClient | None = None) -> int:
    """Deliver the notifications of jobs that ended lately; returns how many were sent."""
    now = now or utcnow()
    if client is None:
        if not config.slack_token:
            return 0
        client = slack_client(config.slack_token, config.slack_api_url)
    factory = session_factory(config.database_url)
    sent = 0
    with factory() as session:
        jobs = list(session.scalars(
            select(Job).where(Job.status.in_(ENDED), Job.completed_at.is_not(None),
                              Job.completed_at > now - WINDOW, Job.completed_at <= now)
            .order_by(Job.id)).unique())
        for job in jobs:
            for target in notifications.job_recipients(session, job, now=now):
                where = target.slack_user_id or target.channel_id
                key = f"job:{job.job_id}:{where}"[:191]
                try:
                    with savepoint(session):
                        session.add(NotificationLog(event_key=key, created_at=now))
                        session.flush()
                except IntegrityError:
                    continue  # sent already (by this clock or another)
                session.commit()
                sent += _send(client, target, _text(job))
    return sent


def _text(job: Job) -> str:
    status = job.status.value
    why = f": {job.error_message[:300]}" if status == "failed" and job.error_message else ""
    return (f"{EMOJI.get(status, '')} Job `{short_id(job.job_id)}` "
            f"{escape(job.playbook.name)} on {escape(job.server.hostname)} "
            f"({job.server.environment.value}, by @{escape(job.user.username)}) "
            f"{'succeeded' if status == 'success' else status}{escape(why)}.")


def _send(client: WebClient, target: notifications.Delivery, text: str) -> int:
    try:
        channel = target.channel_id
        if target.slack_user_id:
            channel = client.conversations_open(users=target.slack_user_id)["channel"]["id"]
        client.chat_postMessage(channel=channel, text=text)
        return 1
    except (*SLACK_ERRORS, KeyError) as exc:
        log.warning("could not deliver a job notification to %s: %s", target, exc)
        return 0
