"""The API's JSON shapes of jobs, log lines, tickets, servers, playbooks and audit rows.

Times are ISO 8601 in UTC. Nothing secret is ever included: extra vars are shown as the
audit shows them (`core.audit.sanitize`), audit details as stored (already sanitized).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core import audit
from db.models import AuditLog, Job, Playbook, Server, Ticket


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def job(item: Job, *, page_url: str | None = None) -> dict[str, Any]:
    """A job with its playbook, server and user (pattern 2's joins)."""
    out: dict[str, Any] = {
        "id": item.job_id,
        "run_id": item.run_id,
        "status": item.status.value,
        "done": item.status.is_final,
        "check_mode": bool(item.check_mode),
        "extra_vars": audit.sanitize(item.extra_vars or {}),
        "error_message": item.error_message,
        "cancel_requested": bool(item.cancel_requested),
        "created_at": iso(item.created_at),
        "started_at": iso(item.started_at),
        "completed_at": iso(item.completed_at),
        "recap": item.recap,
        "playbook": {"id": item.playbook.id, "name": item.playbook.name},
        "server": {"id": item.server.id, "hostname": item.server.hostname,
                   "environment": item.server.environment.value},
        "user": {"id": item.user.id, "username": item.user.username},
    }
    if page_url:
        out["page_url"] = page_url
    return out


def log_line(row: Any) -> dict[str, Any]:
    number, level, content = row
    return {"n": int(number), "level": getattr(level, "value", str(level)), "text": content}


def ticket(item: Ticket) -> dict[str, Any]:
    return {
        "id": item.ticket_id,
        "kind": item.kind.value,
        "title": item.title,
        "description": item.description,
        "status": item.status.value,
        "priority": item.priority.value,
        "job_id": item.job.job_id if item.job is not None else None,
        "created_by": item.creator.username,
        "assignee": item.assignee.username if item.assignee is not None else None,
        "resolution_note": item.resolution_note,
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "resolved_at": iso(item.resolved_at),
        "expires_at": iso(item.expires_at),
    }


def server(item: Server) -> dict[str, Any]:
    return {"id": item.id, "hostname": item.hostname, "environment": item.environment.value,
            "tags": list(item.tags or []), "groups": [g.name for g in item.groups],
            "os_type": item.os_type, "description": item.description,
            "active": bool(item.is_active)}


def playbook(item: Playbook) -> dict[str, Any]:
    variables = {
        name: {k: v for k, v in (spec or {}).items() if k != "default" or not spec.get("secret")}
        for name, spec in (item.variables or {}).items()
    }
    return {"id": item.id, "name": item.name, "description": item.description,
            "tags": list(item.tags or []), "variables": variables,
            "allow_free_vars": bool(item.allow_free_vars), "active": bool(item.is_active)}


def audit_row(item: AuditLog) -> dict[str, Any]:
    return {"id": item.id, "timestamp": iso(item.timestamp), "user_id": item.actor_user_id,
            "action": item.action, "resource_type": item.resource_type,
            "resource_id": item.resource_id, "details": item.details,
            "ip_address": item.ip_address, "user_agent": item.user_agent,
            "request_id": item.request_id}


def jobs(items: Sequence[Job]) -> list[dict[str, Any]]:
    return [job(j) for j in items]
