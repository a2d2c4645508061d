"""Notification settings: who is told about what, and where (seed v1.1).

Events:
    job_ended         a job of mine ended (succeeded, failed or was cancelled)
    job_failed        a job failed in one of `environments` / of one of `playbooks` (empty: any)
    approval_waiting  an approval request I can decide is waiting (admins)
    ticket_assigned   a ticket was assigned to me

A user's settings: the events they want (default, with no row: `approval_waiting` and
`ticket_assigned`), where (`dm`, or a channel id), and quiet hours (HH:MM-HH:MM in a time
zone) during which nothing is sent to them. A channel route (admins): the events posted in
that channel, failures narrowed the same way; routes have no quiet hours.

Guarantees:
- `approval_recipients` names every active admin who can decide a request (never its
  requester) and wants `approval_waiting`, outside their quiet hours, plus the channel
  routes of that event — so a request reaches its approvers wherever the run was typed.
- A user reads and changes only their own settings; only admins set channel routes
  (`notification.route`). Each change is audited (`notify.update`, `notify.route`).
Nothing here commits or talks to Slack: callers deliver the `Delivery` values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, permissions
from core.audit import RequestInfo
from core.errors import InvalidInput
from core.freezes import zone
from db.base import utcnow
from db.models import Job, NotificationSetting, Role, User

EVENTS = ("job_ended", "job_failed", "approval_waiting", "ticket_assigned")
DEFAULT_EVENTS = ("approval_waiting", "ticket_assigned")
_QUIET = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)$")
_CHANNEL = re.compile(r"^(?:<#)?([CGD][A-Z0-9_]{2,30})(?:\|[^>]*)?>?$")


@dataclass(frozen=True)
class Delivery:
    """Where to send one notification: a user's DM (`slack_user_id`) or a channel."""

    slack_user_id: str | None = None
    channel_id: str | None = None


def settings_of(session: Session, user: User) -> NotificationSetting:
    """The user's settings (a transient default row when they never changed them)."""
    row = session.scalar(select(NotificationSetting).where(NotificationSetting.user_id == user.id))
    if row is None:
        row = NotificationSetting(user_id=user.id, events=list(DEFAULT_EVENTS), environments=[],
                                  playbooks=[], deliver="dm", timezone="UTC")
    return row


def update_own(session: Session, user: User, changes: Mapping[str, str], *,
               request: RequestInfo | None = None) -> NotificationSetting:
    """Change the user's own settings. `changes`: events=a,b (or none), env=production,
    playbook=deploy, to=dm|<channel>, quiet=22:00-07:00 (or off), tz=Europe/Paris.
    Raises InvalidInput naming the bad key or value."""
    permissions.require(user, permissions.JOB_VIEW)
    row = settings_of(session, user)
    _apply(row, changes, allow_deliver=True)
    if row.id is None:
        session.add(row)
    session.flush()
    audit.record(session, user=user, action="notify.update", resource_type="user",
                 resource_id=user.username, details=describe(row), request=request)
    return row


def set_route(session: Session, actor: User, channel: str, changes: Mapping[str, str], *,
              request: RequestInfo | None = None) -> NotificationSetting:
    """An admin routes events to a channel (events=none removes the route's events)."""
    permissions.require(actor, permissions.NOTIFICATION_ROUTE)
    channel_id = channel_ref(channel)
    row = session.scalar(select(NotificationSetting)
                         .where(NotificationSetting.channel_id == channel_id))
    if row is None:
        row = NotificationSetting(channel_id=channel_id, events=[], environments=[],
                                  playbooks=[], deliver=channel_id, timezone="UTC")
        session.add(row)
    _apply(row, changes, allow_deliver=False)
    session.flush()
    audit.record(session, user=actor, action="notify.route", resource_type="channel",
                 resource_id=channel_id, details=describe(row), request=request)
    return row


def routes(session: Session) -> list[NotificationSetting]:
    return list(session.scalars(select(NotificationSetting)
                                .where(NotificationSetting.channel_id.is_not(None))
                                .order_by(NotificationSetting.channel_id)))


def approval_recipients(session: Session, job: Job, *,
                        now: datetime | None = None) -> list[Delivery]:
    """Who is told that `job`'s approval request waits (see the module docstring)."""
    now = now or utcnow()
    admins = session.scalars(select(User).where(User.role == Role.admin,
                                                User.is_active.is_(True),
                                                User.id != job.user_id).order_by(User.id))
    found = [d for d in (_for_user(session, admin, "approval_waiting", now) for admin in admins)
             if d is not None]
    return _dedup(found + _routes_for(session, "approval_waiting", job))


def job_recipients(session: Session, job: Job, *, now: datetime | None = None
                   ) -> list[Delivery]:
    """Who is told that `job` ended: its requester (job_ended), and the users and routes
    whose job_failed filters match a failed job."""
    now = now or utcnow()
    out = []
    mine = _for_user(session, job.user, "job_ended", now)
    if mine is not None:
        out.append(mine)
    if job.status.value == "failed":
        for row in session.scalars(select(NotificationSetting)
                                   .where(NotificationSetting.user_id.is_not(None))):
            user = session.get(User, row.user_id)
            if user is not None and user.is_active and _matches(row, "job_failed", job):
                found = _for_user(session, user, "job_failed", now, row=row)
                if found is not None:
                    out.append(found)
        out += _routes_for(session, "job_failed", job)
    out += _routes_for(session, "job_ended", job)
    return _dedup(out)


def user_delivery(session: Session, user: User, event: str, *,
                  now: datetime | None = None) -> Delivery | None:
    """Where `user` wants `event` (e.g. the decision on their request, a ticket assigned to
    them), or None (not wanted, quiet hours, inactive)."""
    return _for_user(session, user, event, now or utcnow())


def in_quiet_hours(row: NotificationSetting, now: datetime) -> bool:
    if row.quiet_start is None or row.quiet_end is None:
        return False
    local = now.astimezone(zone(row.timezone))
    minute = local.hour * 60 + local.minute
    start, end = row.quiet_start, row.quiet_end
    return start <= minute < end if start < end else (minute >= start or minute < end)


def describe(row: NotificationSetting) -> dict[str, Any]:
    quiet = (f"{_hhmm(row.quiet_start)}-{_hhmm(row.quiet_end)} {row.timezone}"
             if row.quiet_start is not None and row.quiet_end is not None else "off")
    return {"events": list(row.events or []), "environments": list(row.environments or []),
            "playbooks": list(row.playbooks or []), "to": row.deliver, "quiet": quiet}


def channel_ref(text: str) -> str:
    match = _CHANNEL.match((text or "").strip())
    if not match:
        raise InvalidInput(f"`{str(text)[:40]}` is not a channel; mention it (`#ops`) or give "
                           "its id (C0123…).")
    return match.group(1)


# internals ------------------------------------------------------------------------------


def _apply(row: NotificationSetting, changes: Mapping[str, str], *, allow_deliver: bool) -> None:
    keys = {"events", "env", "playbook", "quiet", "tz"} | ({"to"} if allow_deliver else set())
    for key, value in changes.items():
        if key not in keys:
            raise InvalidInput(f"Unknown setting `{key[:32]}`; use {', '.join(sorted(keys))}.")
        value = value.strip()
        if key == "events":
            wanted = [] if value.lower() in ("none", "off", "") else _list(value)
            bad = [e for e in wanted if e not in EVENTS]
            if bad:
                raise InvalidInput(f"Unknown event {', '.join(f'`{e}`' for e in bad)}; events "
                                   f"are {', '.join(EVENTS)}.")
            row.events = wanted
        elif key == "env":
            envs = [] if value.lower() in ("any", "all", "") else _list(value)
            bad = [e for e in envs if e not in ("production", "staging", "development")]
            if bad:
                raise InvalidInput(f"`{bad[0][:32]}` is not an environment.")
            row.environments = envs
        elif key == "playbook":
            row.playbooks = [] if value.lower() in ("any", "all", "") else _list(value)
        elif key == "to":
            row.deliver = "dm" if value.lower() == "dm" else channel_ref(value)
        elif key == "tz":
            row.timezone = zone(value).key
        elif key == "quiet":
            if value.lower() in ("off", "none", ""):
                row.quiet_start = row.quiet_end = None
                continue
            match = _QUIET.match(value)
            if not match:
                raise InvalidInput("Quiet hours are `HH:MM-HH:MM` (24-hour), e.g. "
                                   "`quiet=22:00-07:00`, or `quiet=off`.")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            row.quiet_start, row.quiet_end = h1 * 60 + m1, h2 * 60 + m2


def _list(value: str) -> list[str]:
    return sorted({v.strip().lower() for v in value.split(",") if v.strip()})


def _matches(row: NotificationSetting, event: str, job: Job) -> bool:
    if event not in (row.events or []):
        return False
    if event != "job_failed":
        return True
    envs, books = row.environments or [], row.playbooks or []
    return ((not envs or job.server.environment.value in envs)
            and (not books or job.playbook.name.lower() in books))


def _for_user(session: Session, user: User, event: str, now: datetime,
              row: NotificationSetting | None = None) -> Delivery | None:
    if not user.is_active or not user.slack_user_id:
        return None
    row = row or settings_of(session, user)
    if event not in (row.events or []) or in_quiet_hours(row, now):
        return None
    if row.deliver and row.deliver != "dm":
        return Delivery(channel_id=row.deliver)
    return Delivery(slack_user_id=user.slack_user_id)


def _routes_for(session: Session, event: str, job: Job) -> list[Delivery]:
    return [Delivery(channel_id=row.channel_id) for row in routes(session)
            if _matches(row, event, job)]


def _dedup(items: Iterable[Delivery]) -> list[Delivery]:
    seen: list[Delivery] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _hhmm(minute: int | None) -> str:
    return f"{(minute or 0) // 60:02d}:{(minute or 0) % 60:02d}"
