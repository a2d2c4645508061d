"""`/audit <resource type> <id>` — the audit trail of one resource, newest first (admins)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from core import tickets as core_tickets
from core.errors import InvalidInput, NotFound
from db import queries
from db.models import AuditLog, Playbook, Server, User
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import parse_user, split_words, unknown
from slackui import ids
from slackui.audit import TRAIL_LIMIT, audit_trail_blocks
from slackui.text import escape

USAGE = "/audit <resource type> <id>"
TYPES = ("job", "ticket", "server", "playbook", "user")
ALIASES = {"jobs": "job", "tickets": "ticket", "servers": "server", "host": "server",
           "playbooks": "playbook", "users": "user"}


def audit_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if len(words) != 2:
        raise InvalidInput(f"Usage: `{USAGE}` — type is one of {', '.join(TYPES)}; e.g. "
                           "`/audit job 3f2a9c1e`, `/audit server web-01`.")
    kind = ALIASES.get(words[0].lower(), words[0].lower())
    if kind not in TYPES:
        raise unknown(words[0], TYPES, "resource type", USAGE)
    ref = words[1]
    action = Action("audit.view", kind, ref)

    def work(session: Session, user: Any) -> tuple[str, list[AuditLog], dict[int, str]]:
        permissions.require(user, permissions.AUDIT_VIEW)
        label, keys = resource_keys(session, kind, ref)
        action.resource_id = label
        rows: dict[int, AuditLog] = {}
        for key in keys:
            for row in queries.audit_trail(session, kind, key, limit=TRAIL_LIMIT + 1):
                rows[row.id] = row
        entries = sorted(rows.values(), key=lambda r: r.id, reverse=True)[:TRAIL_LIMIT + 1]
        user_ids = {e.user_id for e in entries if e.user_id}
        names = dict(session.execute(select(User.id, User.username)
                                     .where(User.id.in_(user_ids))).all())
        return label, entries, names

    label, entries, names = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Audit trail of {escape(kind)} {escape(label)}",
                        audit_trail_blocks(kind, label, entries, names))


def resource_keys(session: Session, kind: str, ref: str) -> tuple[str, list[str]]:
    """How the resource is shown, and the resource ids its audit rows may carry."""
    if kind == "job":
        job = core_jobs.get_job(session, ref)
        return job.job_id[:8], [job.job_id, str(job.id)]
    if kind == "ticket":
        ticket = core_tickets.get_ticket(session, ref)
        return ticket.ticket_id[:8], [ticket.ticket_id, str(ticket.id)]
    if kind == "server":
        server = session.scalar(select(Server).where(func.lower(Server.hostname) == ref.lower()))
        if server is None:
            return ref, [ref]
        return server.hostname, [server.hostname, str(server.id)]
    if kind == "playbook":
        book = session.scalar(select(Playbook).where(Playbook.name == ref))
        if book is None:
            return ref, [ref]
        return book.name, [book.name, str(book.id)]
    who = parse_user(ref)
    name = who.name if who and who.name else ref.lstrip("@")
    query = select(User).where(func.lower(User.username) == name.lower())
    if who and who.slack_user_id:
        query = select(User).where(User.slack_user_id == who.slack_user_id)
    user = session.scalar(query)
    if user is None:
        raise NotFound(f"No user `{ref}`.")
    return user.username, [user.username, str(user.id)]


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_AUDIT, audit_command)
