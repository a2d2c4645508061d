"""`/api/me`, `/api/stats`, `/api/audit`, `/api/tickets…`, `/api/servers`, `/api/playbooks`:
what chat's `/playbot whoami`, `/jobs stats`, `/audit`, `/tickets`, `/servers` and
`/playbooks` show, through the same core functions and permission checks."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.orm import Session

from core import permissions, playbook_registry, servers, tickets
from core.errors import InvalidInput
from db import queries
from db.models import TicketKind, TicketStatus, User
from handlers.api import params, serialize
from handlers.api.calls import Call, Gate, perform, request_info
from handlers.api.config import ApiConfig


def register(app: Flask, cfg: ApiConfig, gate: Gate) -> None:
    def run(call: Call, work: Any) -> Response:
        return jsonify(perform(cfg, gate, call, work))

    @app.get("/api/me")
    def whoami() -> Response:
        call = Call("whoami", "user")

        def work(session: Session, user: User) -> Any:
            call.resource_id = user.username
            return {"username": user.username, "role": user.role.value,
                    "slack_user_id": user.slack_user_id}

        return run(call, work)

    @app.get("/api/stats")
    def stats() -> Response:
        days = params.integer("days", 7, low=1, high=366)

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.STATS_VIEW)
            counts = queries.job_stats(session, days)
            return {"days": days, "total": sum(counts.values()),
                    "by_status": {status.value: n for status, n in counts.items()}}

        return run(Call("jobs.stats", "job", details={"days": days}), work)

    @app.get("/api/audit")
    def audit_trail() -> Response:
        kind = (request.args.get("resource_type") or "").strip()
        ref = (request.args.get("resource_id") or "").strip()
        limit = params.integer("limit", 50, low=1, high=500)
        if not kind or not ref:
            raise InvalidInput("Give `resource_type` and `resource_id`, e.g. "
                               "`/api/audit?resource_type=job&resource_id=<job id>`.")

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.AUDIT_VIEW)
            rows = queries.audit_trail(session, kind[:32], ref[:64], limit=limit)
            return {"resource_type": kind, "resource_id": ref,
                    "entries": [serialize.audit_row(r) for r in rows]}

        return run(Call("audit.view", kind[:32] or "audit", ref[:64] or None), work)

    @app.get("/api/tickets")
    def list_tickets() -> Response:
        status = _enum(TicketStatus, request.args.get("status"), "ticket status")
        kind = _enum(TicketKind, request.args.get("kind"), "ticket kind")
        limit = params.integer("limit", 50, low=1, high=200)

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.TICKET_VIEW)
            if status is None:
                found = tickets.queue(session, kind=kind, limit=limit)
            else:
                found = tickets.list_tickets(session, status=status, kind=kind, limit=limit)
            return {"tickets": [serialize.ticket(t) for t in found]}

        return run(Call("tickets.list", "ticket"), work)

    @app.get("/api/tickets/<ref>")
    def show_ticket(ref: str) -> Response:
        call = Call("ticket.view", "ticket", ref)

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.TICKET_VIEW)
            ticket = tickets.get_ticket(session, ref)
            call.resource_id = ticket.ticket_id
            return serialize.ticket(ticket)

        return run(call, work)

    @app.post("/api/tickets/<ref>/resolve")
    def resolve_ticket(ref: str) -> Response:
        note = params.body().get("note")
        if not isinstance(note, str):
            raise InvalidInput("`note` (a string) is required: say how it was fixed.")
        call = Call("ticket.resolve", "ticket", ref, audited_by_core=True)

        def work(session: Session, user: User) -> Any:
            ticket = tickets.resolve(session, user, ref, note, request=request_info())
            session.refresh(ticket)
            return serialize.ticket(ticket)

        return run(call, work)

    @app.get("/api/servers")
    def list_servers() -> Response:
        env = request.args.get("environment") or None
        tag = request.args.get("tag") or None

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.SERVER_VIEW)
            found = servers.list_servers(session, environment=env, tag=tag)
            return {"servers": [serialize.server(s) for s in found]}

        return run(Call("servers.list", "server",
                        details={"environment": env, "tag": tag}), work)

    @app.get("/api/playbooks")
    def list_playbooks() -> Response:
        tag = request.args.get("tag") or None

        def work(session: Session, user: User) -> Any:
            permissions.require(user, permissions.PLAYBOOK_VIEW)
            found = playbook_registry.list_playbooks(session, tag=tag)
            return {"playbooks": [serialize.playbook(b) for b in found]}

        return run(Call("playbooks.list", "playbook", details={"tag": tag}), work)


def _enum(cls: Any, raw: str | None, what: str) -> Any:
    if not raw:
        return None
    try:
        return cls(raw.strip().lower())
    except ValueError:
        names = ", ".join(m.value for m in cls)
        raise InvalidInput(f"`{raw[:40]}` is not a {what}; use one of {names}.") from None
