"""Schedules: a job template run on a cron expression in a time zone, or once at a time.

Cron expressions are read by `cronsim` (5 fields, as cron) in
the schedule's IANA time zone (`zoneinfo`). DST is handled as cronsim documents it: a time
the spring change skips fires at the first valid time after it, and a time the autumn change
repeats fires once (its first occurrence).

Guarantees:
- A fire is claimed by ONE conditional UPDATE that moves `next_run_at` from the value the
  clock read: two clocks (or one clock running a pass twice) never fire it twice, and the
  run's request key `schedule:<id>:<fire time>` deduplicates the launch as well.
- Missed fire times (the clock was down longer than `GRACE`) follow the schedule's policy:
  "skip" runs none of them, "once" runs once now; the outcome's note says which.
- A scheduled run is a normal launch through `core.templates.launch_template` (validation,
  roles, freezes, dedup) as the schedule's owner, audited `schedule.run` (or
  `schedule.skip` with the reason) as the schedule's.
- A schedule whose template targets a production server needs an up-front approval by an
  admin other than its owner, bound to `content_hash` (playbook and its hash, variables,
  target and the servers it names, check mode). Any change of that content suspends it
  until approved again; each run's approval requests are then decided by that approval.
- A fire time inside a change freeze is skipped and says so (no break-glass for schedules).
- Operators manage their own schedules, admins all (`template.manage`). Changes are
  audited (`schedule.add|pause|resume|remove|approve`). Nothing here commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import approvals, audit, permissions, templates
from core.audit import RequestInfo
from core.errors import InvalidInput, InvalidState, NotAllowed, NotFound, PlaybotError
from core.freezes import Frozen, local_instant, zone
from core.jobs import LaunchPolicy, LaunchResult
from core.suggestions import closest
from core.targets import resolve_target
from db.base import utcnow
from db.models import Environment, JobTemplate, Role, Schedule, User
from db.session import savepoint

GRACE = timedelta(minutes=5)
MISSED_POLICIES = ("skip", "once")
MAX_CATCH_UP = 10_000  # fire times counted when the clock comes back


class UnknownSchedule(NotFound):
    pass


@dataclass
class FireOutcome:
    """What the clock did with one due schedule.

    fired_at: the fire time acted on. result: the launch (None when nothing ran).
    note: what the channel is told (missed runs, a skip and why, a suspension).
    """

    schedule: Schedule
    fired_at: datetime
    result: LaunchResult | None = None
    note: str = ""
    missed: int = 0
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


def normal_name(name: str) -> str:
    return templates.normal_name(name)


def next_fire(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire time strictly after `after` (UTC), or None (a one-off that is past)."""
    if schedule.cron is None:
        return schedule.run_at if schedule.run_at and schedule.run_at > after else None
    tz = zone(schedule.timezone)
    moment = next(iter(CronSim(schedule.cron, after.astimezone(tz))))
    return moment.astimezone(UTC)


def add_schedule(session: Session, actor: User, *, name: str, template: str,
                 cron: str | None = None, run_at: str | None = None,
                 timezone_name: str = "UTC", missed: str = "skip",
                 channel_id: str | None = None, now: datetime | None = None,
                 request: RequestInfo | None = None) -> Schedule:
    """Schedule a template by `cron` (e.g. "0 3 * * 1-5") or once at `run_at`
    ("2026-12-24 18:00"), in `timezone_name`. Raises NotAllowed, InvalidInput (bad
    expression, time, zone or policy; name taken; a time in the past), UnknownTemplate."""
    permissions.require(actor, permissions.JOB_LAUNCH)
    now = now or utcnow()
    key = normal_name(name)
    if session.scalar(select(Schedule.id).where(Schedule.name == key)) is not None:
        raise InvalidInput(f"A schedule named `{key}` already exists.")
    found = templates.get_template(session, template)
    tz = zone(timezone_name)
    policy = (missed or "skip").strip().lower()
    if policy not in MISSED_POLICIES:
        raise InvalidInput(f"Missed runs are `skip` or `once`, not `{policy[:16]}`.")
    if bool(cron) == bool(run_at):
        raise InvalidInput("Give either a cron expression or a time to run once.")
    schedule = Schedule(name=key, template_id=found.id, template=found, timezone=tz.key,
                        missed=policy, channel_id=channel_id, owner_id=actor.id, owner=actor,
                        paused=False)
    if cron:
        schedule.cron = " ".join(cron.split())[:128]
        try:
            schedule.next_run_at = next_fire(schedule, now)
        except (CronSimError, ValueError) as exc:
            raise InvalidInput(f"`{schedule.cron}` is not a cron expression ({exc}); e.g. "
                               "`0 3 * * 1-5` (03:00 on weekdays).") from None
    else:
        schedule.run_at = local_instant(str(run_at), tz)
        if schedule.run_at <= now:
            raise InvalidInput("That time has already passed.")
        schedule.next_run_at = schedule.run_at
    session.add(schedule)
    session.flush()
    _audit(session, actor, "schedule.add", schedule, request)
    return schedule


def get_schedule(session: Session, name: str) -> Schedule:
    key = (name or "").strip().lower()
    found = session.scalars(select(Schedule).where(Schedule.name == key)).unique().first()
    if found is None:
        names = list(session.scalars(select(Schedule.name)))
        raise UnknownSchedule(f"There is no schedule named `{key[:70]}`.",
                              suggestions=closest(key, names))
    return found


def list_schedules(session: Session) -> list[Schedule]:
    """Every schedule, soonest next run first (paused and finished ones last)."""
    rows = list(session.scalars(select(Schedule).order_by(Schedule.name)).unique())
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(rows, key=lambda s: (s.paused, s.next_run_at or far, s.name))


def set_paused(session: Session, actor: User, name: str, paused: bool, *,
               now: datetime | None = None, request: RequestInfo | None = None) -> Schedule:
    """Pause or resume (owner or admin). Resuming counts from now: runs due while paused
    were not missed, they were paused. Raises NotAllowed, UnknownSchedule, InvalidState."""
    schedule = get_schedule(session, name)
    permissions.require(actor, permissions.TEMPLATE_MANAGE, owner_id=schedule.owner_id)
    if schedule.paused == paused:
        raise InvalidState(f"Schedule `{schedule.name}` is already "
                           f"{'paused' if paused else 'running'}.")
    schedule.paused = paused
    if not paused:
        schedule.next_run_at = next_fire(schedule, now or utcnow())
    session.flush()
    _audit(session, actor, "schedule.pause" if paused else "schedule.resume", schedule, request)
    return schedule


def remove_schedule(session: Session, actor: User | None, name: str, *,
                    request: RequestInfo | None = None) -> Schedule:
    schedule = get_schedule(session, name)
    if actor is not None:
        permissions.require(actor, permissions.TEMPLATE_MANAGE, owner_id=schedule.owner_id)
    _audit(session, actor, "schedule.remove", schedule, request)
    session.delete(schedule)
    session.flush()
    return schedule


def content_hash(session: Session, template: JobTemplate, *, max_targets: int = 50) -> str:
    """SHA-256 of what a scheduled run of `template` would run: playbook name and registered
    hash, variables, check mode, target and the servers it names now."""
    try:
        hosts = [s.hostname for s in resolve_target(session, template.target, limit=max_targets)]
    except PlaybotError:
        hosts = []
    canonical = json.dumps({"playbook": template.playbook.name,
                            "playbook_hash": template.playbook.file_hash,
                            "variables": template.variables or {},
                            "check_mode": template.check_mode, "target": template.target,
                            "servers": sorted(hosts)}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def needs_approval(session: Session, schedule: Schedule, *, max_targets: int = 50) -> bool:
    """Whether the schedule's runs reach a production server (an up-front approval needed)."""
    try:
        servers = resolve_target(session, schedule.template.target, limit=max_targets)
    except PlaybotError:
        return False
    return any(s.environment == Environment.production for s in servers)


def state(session: Session, schedule: Schedule) -> str:
    """"paused", "done" (a one-off that fired), "awaiting approval", "suspended" (its
    template changed since the approval) or "active"."""
    if schedule.paused:
        return "paused"
    if schedule.next_run_at is None:
        return "done"
    if needs_approval(session, schedule):
        if schedule.approved_hash is None:
            return "awaiting approval"
        if schedule.approved_hash != content_hash(session, schedule.template):
            return "suspended"
    return "active"


def approve_schedule(session: Session, actor: User, name: str, *,
                     request: RequestInfo | None = None) -> Schedule:
    """An admin other than the owner approves the schedule's runs up front, bound to the
    template's current content. Raises NotAllowed, UnknownSchedule."""
    permissions.require(actor, permissions.APPROVAL_DECIDE)
    schedule = get_schedule(session, name)
    if schedule.owner_id == actor.id:
        raise NotAllowed("You own this schedule, so another admin must approve it "
                         "(four-eyes rule).")
    schedule.approved_hash = content_hash(session, schedule.template)
    schedule.approved_by = actor.id
    schedule.approver = actor
    schedule.approved_at = utcnow()
    session.flush()
    _audit(session, actor, "schedule.approve", schedule, request,
           extra={"content_hash": schedule.approved_hash})
    return schedule


def due(session: Session, now: datetime) -> list[Schedule]:
    """Schedules whose next fire time has come (not paused)."""
    return list(session.scalars(
        select(Schedule).where(Schedule.paused.is_(False), Schedule.next_run_at.is_not(None),
                               Schedule.next_run_at <= now).order_by(Schedule.next_run_at)
    ).unique())


def fire(session: Session, schedule: Schedule, now: datetime, *,
         policy: LaunchPolicy) -> FireOutcome | None:
    """Act on one due schedule at `now` (see the module docstring): claim the fire, apply
    the missed-run policy, check the approval, launch the template as the owner. Returns
    None when another clock claimed it first. Refusals are outcomes, not errors."""
    first = schedule.next_run_at
    assert first is not None
    times = [first]
    while len(times) < MAX_CATCH_UP:
        following = next_fire(schedule, times[-1])
        if following is None or following > now:
            break
        times.append(following)
    upcoming = next_fire(schedule, now)
    claimed = session.execute(
        update(Schedule).where(Schedule.id == schedule.id, Schedule.next_run_at == first,
                               Schedule.paused.is_(False))
        .values(next_run_at=upcoming, last_run_at=now)
        .execution_options(synchronize_session=False)).rowcount == 1
    if not claimed:
        return None
    session.refresh(schedule)
    late = len(times) > 1 or now - times[-1] > GRACE
    outcome = FireOutcome(schedule=schedule, fired_at=times[-1])
    if late:
        outcome.missed = len(times)
        count = f"{len(times)} run{'s' if len(times) != 1 else ''}"
        since = _local(schedule, times[0])
        if schedule.missed == "skip":
            outcome.note = (f"Missed {count} while the clock was down (first due {since}); "
                            "the schedule's policy is *skip*: not run.")
            return _skip(session, outcome, "missed")
        outcome.note = (f"Missed {count} while the clock was down (first due {since}); the "
                        "schedule's policy is *run once*: running it once now.")
    why = _suspended(session, schedule)
    if why:
        outcome.note = " ".join(filter(None, [outcome.note, why]))
        return _skip(session, outcome, "suspended")
    owner = schedule.owner
    key = f"schedule:{schedule.id}:{outcome.fired_at.strftime('%Y%m%dT%H%MZ')}"
    try:
        with savepoint(session):
            launched = templates.launch_template(
                session, owner, schedule.template.name, {}, request_key=key,
                channel_id=schedule.channel_id, policy=policy, source="schedule", now=now,
                with_previews=False)  # its approval is the schedule's, given up front
            result = launched.result
            outcome.notes = launched.notes
            if result.approval_tickets and schedule.approver is not None:
                approvals.approve_run(session, schedule.approver,
                                      result.approval_tickets[0].ticket_id, policy=policy)
                result.approval_tickets = []
                result.needs_approval = False
                for job in result.jobs:
                    session.refresh(job)
    except Frozen as exc:
        outcome.note = " ".join(filter(None, [outcome.note, f"Skipped: {exc}".split(
            " — break glass")[0] + "."]))
        return _skip(session, outcome, "frozen")
    except PlaybotError as exc:
        outcome.note = " ".join(filter(None, [outcome.note, f"Could not run: {exc}"]))
        return _skip(session, outcome, type(exc).__name__)
    outcome.result = result
    audit.record(session, user=None, action="schedule.run", resource_type="schedule",
                 resource_id=schedule.name,
                 details={"template": schedule.template.name, "owner": owner.username,
                          "fired_at": outcome.fired_at, "missed": outcome.missed,
                          "run_id": result.run_id, "duplicate": result.duplicate,
                          "jobs": [j.job_id for j in result.jobs]})
    return outcome


def describe(session: Session, schedule: Schedule) -> dict[str, Any]:
    return {"name": schedule.name, "template": schedule.template.name,
            "cron": schedule.cron, "run_at": schedule.run_at, "timezone": schedule.timezone,
            "missed": schedule.missed, "paused": schedule.paused,
            "next_run_at": schedule.next_run_at, "owner": schedule.owner.username,
            "approved_by": schedule.approver.username if schedule.approver else None,
            "state": state(session, schedule)}


def local_text(schedule: Schedule, moment: datetime | None) -> str:
    return _local(schedule, moment) if moment else "—"


# internals ------------------------------------------------------------------------------


def _local(schedule: Schedule, moment: datetime) -> str:
    local = moment.astimezone(zone(schedule.timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {schedule.timezone}"


def _suspended(session: Session, schedule: Schedule) -> str | None:
    if not needs_approval(session, schedule):
        return None
    approver = schedule.approver
    if schedule.approved_hash is None or approver is None:
        return (f"Not run: schedule `{schedule.name}` runs on production and needs the "
                "approval of an admin other than its owner (`/schedules approve "
                f"{schedule.name}`).")
    if schedule.approved_hash != content_hash(session, schedule.template):
        return (f"Not run: schedule `{schedule.name}` is suspended: its template (playbook, "
                "variables or servers) changed since @" + approver.username + " approved "
                "it. An admin other than the owner must approve it again.")
    if not approver.is_active or approver.role != Role.admin:
        return (f"Not run: @{approver.username}, who approved schedule `{schedule.name}`, "
                "is no longer an active admin; another admin must approve it again.")
    return None


def _skip(session: Session, outcome: FireOutcome, reason: str) -> FireOutcome:
    outcome.skipped = reason
    schedule = outcome.schedule
    audit.record(session, user=None, action="schedule.skip", resource_type="schedule",
                 resource_id=schedule.name,
                 details={"template": schedule.template.name, "reason": reason,
                          "fired_at": outcome.fired_at, "missed": outcome.missed,
                          "note": outcome.note})
    return outcome


def _audit(session: Session, actor: User | None, action: str, schedule: Schedule,
           request: RequestInfo | None, extra: Mapping[str, Any] | None = None) -> None:
    details = {"template": schedule.template.name, "cron": schedule.cron,
               "run_at": schedule.run_at, "timezone": schedule.timezone,
               "missed": schedule.missed, "owner": schedule.owner.username,
               "paused": schedule.paused, **(extra or {})}
    audit.record(session, user=actor, action=action, resource_type="schedule",
                 resource_id=schedule.name, details=details, request=request)
