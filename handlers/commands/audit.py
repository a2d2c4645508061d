"""`/audit <resource type> <id> [details]` — the audit trail of one resource, newest first
(admins). A job's trail includes its approval request and tickets; a user's, what they did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from core import tickets as core_tickets
from core.errors import InvalidInput, NotFound
from db import queries
from db.models import AuditLog, Playbook, Server, Ticket, TicketKind, User
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import parse_user, split_words, unknown
from slackui import ids
from slackui.audit import TRAIL_LIMIT, audit_trail_blocks
from slackui.text import escape

USAGE = "/audit <resource type> <id> [details]"
TYPES = ("job", "ticket", "approval", "server", "playbook", "user")
ALIASES = {"jobs": "job", "tickets": "ticket", "approvals": "approval", "servers": "server",
           "host": "server", "playbooks": "playbook", "users": "user"}
DETAILS_WORDS = ("details", "--details", "-v")


@dataclass
class Trail:
    """The rows to show for one resource, and what they cover beyond the resource's own."""

    label: str
    keys: list[tuple[str, str]]  # (resource_type, resource_id) pairs whose rows belong here
    actor_id: int | None = None  # also the rows this user wrote
    scope: str | None = None


def audit_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    with_details = len(words) == 3 and words[2].lower() in DETAILS_WORDS
    if len(words) != 2 and not with_details:
        raise InvalidInput(f"Usage: `{USAGE}` — type is one of {', '.join(TYPES)}; e.g. "
                           "`/audit job 3f2a9c1e`, `/audit user bob details`.")
    kind = ALIASES.get(words[0].lower(), words[0].lower())
    if kind not in TYPES:
        raise unknown(words[0], TYPES, "resource type", USAGE)
    ref = words[1]
    action = Action("audit.view", kind, ref)

    def work(session: Session, user: Any) -> tuple[Trail, list[AuditLog], dict[int, str]]:
        permissions.require(user, permissions.AUDIT_VIEW)
        trail = resource_trail(session, kind, ref)
        action.resource_id = trail.label
        rows: dict[int, AuditLog] = {}
        for resource_type, key in trail.keys:
            for row in queries.audit_trail(session, resource_type, key, limit=TRAIL_LIMIT + 1):
                rows[row.id] = row
        if trail.actor_id is not None:
            for row in queries.audit_by_user(session, trail.actor_id, limit=TRAIL_LIMIT + 1):
                rows[row.id] = row
        entries = sorted(rows.values(), key=lambda r: r.id, reverse=True)[:TRAIL_LIMIT + 1]
        user_ids = {e.user_id for e in entries if e.user_id}
        names = dict(session.execute(select(User.id, User.username)
                                     .where(User.id.in_(user_ids))).all())
        return trail, entries, names

    trail, entries, names = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Audit trail of {escape(kind)} {escape(trail.label)}",
                        audit_trail_blocks(kind, trail.label, entries, names,
                                           with_details=with_details, scope=trail.scope))


def resource_trail(session: Session, kind: str, ref: str) -> Trail:
    """Which audit rows make up the trail of the resource `kind` `ref`."""
    if kind == "job":
        job = core_jobs.get_job(session, ref)
        tickets = session.scalars(select(Ticket).where(Ticket.job_id == job.id)).unique().all()
        keys = [("job", job.job_id), ("job", str(job.id))]
        for ticket in tickets:
            keys += [("ticket", ticket.ticket_id), ("ticket", str(ticket.id))]
        scope = ("With its approval request and tickets." if tickets else None)
        return Trail(job.job_id[:8], keys, scope=scope)
    if kind in ("ticket", "approval"):
        ticket = core_tickets.get_ticket(session, ref)
        if kind == "approval" and ticket.kind != TicketKind.approval:
            raise NotFound(f"Ticket `{ticket.ticket_id[:8]}` is not an approval request: "
                           f"`/audit ticket {ticket.ticket_id[:8]}`.")
        keys = [("ticket", ticket.ticket_id), ("ticket", str(ticket.id))]
        return Trail(ticket.ticket_id[:8], keys)
    if kind == "server":
        server = session.scalar(select(Server).where(func.lower(Server.hostname) == ref.lower()))
        if server is None:
            return Trail(ref, [("server", ref)])
        return Trail(server.hostname, [("server", server.hostname), ("server", str(server.id))])
    if kind == "playbook":
        book = session.scalar(select(Playbook).where(Playbook.name == ref))
        if book is None:
            return Trail(ref, [("playbook", ref)])
        return Trail(book.name, [("playbook", book.name), ("playbook", str(book.id))])
    who = parse_user(ref)
    name = who.name if who and who.name else ref.lstrip("@")
    query = select(User).where(func.lower(User.username) == name.lower())
    if who and who.slack_user_id:
        query = select(User).where(User.slack_user_id == who.slack_user_id)
    user = session.scalar(query)
    if user is None:
        raise NotFound(f"No user `{ref}`.")
    return Trail(user.username, [("user", user.username), ("user", str(user.id))],
                 actor_id=user.id, scope="What they did, and what was done to their account.")


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_AUDIT, audit_command)
