"""Change freezes: windows during which launches against an environment are refused.

A window is either weekly (e.g. Friday 16:00 to Monday 08:00 in Europe/Paris, every week)
or one-off (two dates and times in a time zone). Local times are turned into instants with
`zoneinfo`: across a DST change a wall-clock time that does not exist (the spring gap) is
read as the instant it would be with the offset before the change, and an ambiguous one
(the autumn overlap) as its first occurrence (`fold=0`), as Python documents.

Guarantees:
- `check_servers` refuses (`Frozen`, naming the window's reason and the instant it ends, in
  its time zone and in UTC) a launch on any server whose environment a window covers at
  that moment — every launch path calls it through `core.jobs`.
- Break-glass: a launch that states a reason (`--break-glass=...`) is not refused; each of
  its jobs on a frozen server waits for TWO admins, neither of them the requester
  (`BREAK_GLASS_APPROVALS` approval tickets per job; one admin decides at most one of them;
  `admins_self_approve` does not apply). Audited `freeze.break_glass`.
- Only admins add and end windows (`freeze.manage`); both are audited (`freeze.add`,
  `freeze.end`). An ended window never refuses anything again.
Nothing here commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit, permissions, request_digest
from core.audit import RequestInfo
from core.errors import InvalidInput, NotAllowed, NotFound
from db.base import utcnow
from db.models import (
    Environment,
    FreezeWindow,
    Job,
    JobStatus,
    Server,
    Ticket,
    TicketKind,
    TicketPriority,
    TicketStatus,
    User,
    job_values,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BREAK_GLASS_TITLE = "Break glass"
BREAK_GLASS_APPROVALS = 2
MAX_REASON = 500
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class Frozen(NotAllowed):
    """A launch against an environment during a change freeze."""


class UnknownFreeze(NotFound):
    pass


@dataclass(frozen=True)
class FreezeHit:
    """A window in force now: which one, and when this occurrence of it ends (UTC)."""

    window: FreezeWindow
    ends_at: datetime


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raises InvalidInput for an unknown one."""
    try:
        return ZoneInfo((name or "").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"`{str(name)[:64]}` is not a time zone; use an IANA name like "
                           "`Europe/Paris`, `America/New_York` or `UTC`.") from None


def add_window(session: Session, actor: User | None, *, environment: str | None,
               start: str, end: str, timezone_name: str = "UTC", reason: str,
               origin: Mapping[str, Any] | None = None,
               request: RequestInfo | None = None) -> FreezeWindow:
    """Add a freeze window (admins; the CLI as the system).

    environment: production, staging, development, or None/"all" for every environment.
    start, end: "fri 16:00" and "mon 08:00" for a weekly window, or "2026-12-24 00:00"
    and "2026-12-27 08:00" for a one-off window, in `timezone_name`.
    Raises NotAllowed, InvalidInput (bad day, time, date, zone, a one-off that ends before it
    starts or has ended already, an empty or too long reason).
    """
    if actor is not None:
        permissions.require(actor, permissions.FREEZE_MANAGE)
    env = _environment(environment)
    tz = zone(timezone_name)
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("Say why launches are frozen (the reason is shown to whoever is "
                           "refused).")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"The reason is too long (at most {MAX_REASON} characters).")
    window = FreezeWindow(environment=env, timezone=tz.key, reason=text,
                          created_by=actor.id if actor is not None else None)
    weekly_start, weekly_end = _weekly(start), _weekly(end)
    if weekly_start is not None and weekly_end is not None:
        window.kind = "weekly"
        window.start_day, window.start_minute = weekly_start
        window.end_day, window.end_minute = weekly_end
        if weekly_start == weekly_end:
            raise InvalidInput("A weekly window must end at another time than it starts.")
    else:
        starts, ends = local_instant(start, tz), local_instant(end, tz)
        if ends <= starts:
            raise InvalidInput("The window must end after it starts.")
        if ends <= utcnow():
            raise InvalidInput("That window has already ended.")
        window.kind = "once"
        window.starts_at, window.ends_at = starts, ends
    session.add(window)
    session.flush()
    audit.record(session, user=actor, action="freeze.add", resource_type="freeze",
                 resource_id=str(window.id), details={**(origin or {}), **describe(window)},
                 request=request)
    return window


def end_window(session: Session, actor: User | None, window_id: str | int, *,
               origin: Mapping[str, Any] | None = None,
               request: RequestInfo | None = None) -> FreezeWindow:
    """End a window now, for good (admins). Raises NotAllowed, UnknownFreeze."""
    if actor is not None:
        permissions.require(actor, permissions.FREEZE_MANAGE)
    window = _get(session, window_id)
    window.ended_at = utcnow()
    window.ended_by = actor.id if actor is not None else None
    session.flush()
    audit.record(session, user=actor, action="freeze.end", resource_type="freeze",
                 resource_id=str(window.id), details={**(origin or {}), **describe(window)},
                 request=request)
    return window


def list_windows(session: Session, now: datetime | None = None) -> list[FreezeWindow]:
    """The windows not ended (one-off ones not yet over), oldest first."""
    now = now or utcnow()
    rows = session.scalars(select(FreezeWindow).where(FreezeWindow.ended_at.is_(None))
                           .order_by(FreezeWindow.id))
    return [w for w in rows if w.kind == "weekly" or (w.ends_at and w.ends_at > now)]


def in_force(window: FreezeWindow, now: datetime) -> datetime | None:
    """When the occurrence of `window` that covers `now` ends (UTC), or None."""
    if window.ended_at is not None:
        return None
    if window.kind == "once":
        if window.starts_at and window.ends_at and window.starts_at <= now < window.ends_at:
            return window.ends_at
        return None
    tz = ZoneInfo(window.timezone)
    local = now.astimezone(tz)
    # the latest weekly start at or before now (this week's or last week's), then its end
    for back in (0, 7):
        day = local.date() - timedelta(days=(local.weekday() - window.start_day) % 7 + back)
        starts = _at(day, window.start_minute, tz)
        if starts <= now:
            break
    span = (window.end_day - window.start_day) % 7
    end_day = starts.astimezone(tz).date() + timedelta(days=span)
    ends = _at(end_day, window.end_minute, tz)
    if ends <= starts:
        ends = _at(end_day + timedelta(days=7), window.end_minute, tz)
    return ends if starts <= now < ends else None


def active_hits(session: Session, environments: Iterable[Environment],
                now: datetime | None = None) -> dict[Environment, FreezeHit]:
    """The window in force now for each of these environments (the one ending last)."""
    now = now or utcnow()
    wanted = set(environments)
    hits: dict[Environment, FreezeHit] = {}
    for window in list_windows(session, now):
        ends = in_force(window, now)
        if ends is None:
            continue
        for env in wanted if window.environment is None else {window.environment} & wanted:
            if env not in hits or hits[env].ends_at < ends:
                hits[env] = FreezeHit(window, ends)
    return hits


def check_servers(session: Session, servers: Sequence[Server], *, break_glass: str | None,
                  now: datetime | None = None) -> dict[int, FreezeHit]:
    """The freeze in force on each of these servers, by server id (empty: none frozen).

    Raises Frozen when some are frozen and no break-glass reason is given; InvalidInput for
    a break-glass reason that is too long.
    """
    hits = active_hits(session, {s.environment for s in servers}, now)
    frozen = {s.id: hits[s.environment] for s in servers if s.environment in hits}
    reason = (break_glass or "").strip()
    if frozen and not reason:
        first = next(iter(frozen.values()))
        envs = sorted({s.environment.value for s in servers if s.id in frozen})
        raise Frozen(f"Launches against {', '.join(envs)} are frozen until "
                     f"{ends_text(first)}: {first.window.reason} — break glass only in an "
                     "emergency: add `--break-glass=\"why\"`; two admins other than you must "
                     "then approve.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"The break-glass reason is too long (at most {MAX_REASON} "
                           "characters).")
    return frozen


def require_two_admins(session: Session, actor: User, result: Any,
                       frozen: Mapping[int, FreezeHit], reason: str, *, policy: Any,
                       request: RequestInfo | None = None) -> None:
    """Make each new job of a break-glass launch (`result`, a `core.jobs.LaunchResult`) on a
    frozen server wait for two admins other than the requester: it becomes
    `awaiting_approval` with `BREAK_GLASS_APPROVALS` open approval tickets (a production
    job's ordinary request becomes the first of them). Audited `freeze.break_glass`."""
    if result.duplicate:
        return
    now = utcnow()
    for job in result.jobs:
        hit = frozen.get(job.server_id)
        if hit is None:
            continue
        session.execute(update(Job).where(Job.id == job.id, Job.status == JobStatus.pending)
                        .values(job_values(status=JobStatus.awaiting_approval))
                        .execution_options(synchronize_session=False))
        session.refresh(job)
        existing = [t for t in result.approval_tickets if t.job_id == job.id]
        tickets = list(existing)
        while len(tickets) < BREAK_GLASS_APPROVALS:
            ticket = Ticket(kind=TicketKind.approval, job_id=job.id, created_by=actor.id,
                            status=TicketStatus.open, priority=TicketPriority.critical,
                            expires_at=now + policy.approval_ttl, created_at=now, title="",
                            request_digest=request_digest.digest(job))
            session.add(ticket)
            tickets.append(ticket)
        for number, ticket in enumerate(tickets, start=1):
            ticket.title = (f"{BREAK_GLASS_TITLE} ({number}/{BREAK_GLASS_APPROVALS}): "
                            f"{job.playbook.name} on {job.server.hostname} for "
                            f"@{actor.username}")[:255]
            ticket.description = (
                f"@{actor.username} breaks the change freeze \"{hit.window.reason}\" (until "
                f"{ends_text(hit)}) to run `{job.playbook.name}` on `{job.server.hostname}`. "
                f"Reason: {reason.strip()}. Two admins other than the requester must approve.")
            ticket.priority = TicketPriority.critical
            ticket.approvals_needed = None  # two tickets, one admin each
        session.flush()
        result.approval_tickets = [t for t in result.approval_tickets if t.job_id != job.id]
        result.approval_tickets.append(tickets[0])  # one card per job; both decided there
        result.needs_approval = True
        audit.record(session, user=actor, action="freeze.break_glass", resource_type="job",
                     resource_id=job.job_id, request=request,
                     details={"reason": reason.strip(), "freeze": hit.window.id,
                              "freeze_reason": hit.window.reason, "until": hit.ends_at,
                              "server": job.server.hostname,
                              "approval_tickets": [t.ticket_id for t in tickets]})


def second_approval_needed(session: Session, actor: User, ticket: Any) -> bool:
    """For a break-glass approval ticket: whether another open break-glass ticket of the
    same job remains after this one (the job then keeps waiting). Raises NotAllowed when
    `actor` already approved one of that job's break-glass tickets: two different admins
    must approve."""
    others = list(session.scalars(
        select(Ticket).where(Ticket.job_id == ticket.job_id, Ticket.kind == TicketKind.approval,
                             Ticket.id != ticket.id)).unique())
    glass = [t for t in others if is_break_glass(t)]
    if any(t.assignee_id == actor.id and t.status == TicketStatus.resolved for t in glass):
        raise NotAllowed("You already approved this break-glass run; a second admin other "
                         "than the requester must approve it too.")
    return any(t.status == TicketStatus.open for t in glass)


def open_sibling(session: Session, ticket: Any) -> Ticket | None:
    """For a decided break-glass approval ticket whose job still waits: the job's open
    break-glass ticket (what its card's Approve button decides next), else None."""
    if not is_break_glass(ticket) or ticket.job_id is None:
        return None
    found = session.scalars(
        select(Ticket).where(Ticket.job_id == ticket.job_id, Ticket.kind == TicketKind.approval,
                             Ticket.status == TicketStatus.open).order_by(Ticket.id)
    ).unique().first()
    return found if found is not None and is_break_glass(found) else None


def is_break_glass(ticket: Any) -> bool:
    """Whether an approval ticket is one of a break-glass launch's (two admins needed)."""
    return str(ticket.title or "").startswith(BREAK_GLASS_TITLE)


def ends_text(hit: FreezeHit) -> str:
    """"Mon 2026-12-07 08:00 Europe/Paris (07:00 UTC)"."""
    local = hit.ends_at.astimezone(ZoneInfo(hit.window.timezone))
    utc = hit.ends_at.astimezone(UTC)
    return (f"{local:%a %Y-%m-%d %H:%M} {hit.window.timezone}"
            + ("" if hit.window.timezone == "UTC" else f" ({utc:%Y-%m-%d %H:%M} UTC)"))


def describe(window: FreezeWindow) -> dict[str, Any]:
    """A window as plain data (audit rows, lists)."""
    data: dict[str, Any] = {
        "id": window.id, "environment": window.environment.value if window.environment
        else "all", "kind": window.kind, "timezone": window.timezone, "reason": window.reason,
        "ended": window.ended_at is not None}
    if window.kind == "weekly":
        data["from"] = f"{DAYS[window.start_day]} {_hhmm(window.start_minute)}"
        data["to"] = f"{DAYS[window.end_day]} {_hhmm(window.end_minute)}"
    else:
        tz = ZoneInfo(window.timezone)
        data["from"] = f"{window.starts_at.astimezone(tz):%Y-%m-%d %H:%M}"
        data["to"] = f"{window.ends_at.astimezone(tz):%Y-%m-%d %H:%M}"
    return data


# internals ------------------------------------------------------------------------------


def _environment(value: str | None) -> Environment | None:
    text = (value or "all").strip().lower()
    if text in ("all", "*", "any"):
        return None
    try:
        return Environment(text)
    except ValueError:
        raise InvalidInput(f"`{text[:32]}` is not an environment: production, staging, "
                           "development or all.") from None


def _weekly(text: str) -> tuple[int, int] | None:
    """"fri 16:00" -> (4, 960); None when it is not a weekday and a time."""
    words = (text or "").lower().split()
    if len(words) != 2 or words[0][:3] not in DAYS:
        return None
    return DAYS.index(words[0][:3]), _minutes(words[1])


def _minutes(text: str) -> int:
    match = _TIME.match(text)
    if not match:
        raise InvalidInput(f"`{text[:16]}` is not a time of day (HH:MM, 24-hour).")
    return int(match.group(1)) * 60 + int(match.group(2))


def local_instant(text: str, tz: ZoneInfo) -> datetime:
    words = (text or "").split()
    if len(words) != 2:
        raise InvalidInput(f"`{str(text)[:32]}` is neither a weekday and a time (`fri 16:00`) "
                           "nor a date and a time (`2026-12-24 18:00`).")
    try:
        day = date.fromisoformat(words[0])
    except ValueError:
        raise InvalidInput(f"`{words[0][:16]}` is not a date (YYYY-MM-DD).") from None
    return _at(day, _minutes(words[1]), tz)


def _at(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time (fold=0: see the module docstring)."""
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return local.astimezone(UTC)


def _hhmm(minute: int | None) -> str:
    return f"{(minute or 0) // 60:02d}:{(minute or 0) % 60:02d}"


def _get(session: Session, window_id: str | int) -> FreezeWindow:
    text = str(window_id).strip().lstrip("#")
    window = session.get(FreezeWindow, int(text)) if text.isdigit() else None
    if window is None or window.ended_at is not None:
        raise UnknownFreeze(f"There is no freeze window #{text[:16]} in force; `/freeze` "
                            "lists them.")
    return window
