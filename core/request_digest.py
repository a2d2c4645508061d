"""The digest an approval binds to: the exact request it approves.

An approval ticket stores, at launch, `digest(job)` in `tickets.request_digest`: a SHA-256
over a canonical JSON of what will run —

    the playbook (name and `file_hash`, which covers the whole playbook directory),
    the job's variables (sorted keys), check mode,
    the target server (hostname, environment, address, port, user, connection).

It is computed again when an admin approves (`core.approvals`) and when the worker is about
to claim the approved job (`void_changed`). If anything differs — typically the playbook
was re-synced with a new hash, or the server was re-pointed — the approval is void: an
open request is closed and its job cancelled ("Approval void: the playbook changed since
it was requested"); an approved job that has not started is cancelled ("Approval void:
the playbook changed since it was approved"), never run. A ticket without a digest (made
before revision 0014) is not checked.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from db.base import utcnow
from db.models import Job, JobStatus, Ticket, TicketKind, TicketStatus, job_values

VERSION = 1
VOID_PREFIX = "Approval void"


def digest(job: Job) -> str:
    """The digest of the request `job` makes (see the module docstring)."""
    server = job.server
    book = job.playbook
    content: dict[str, Any] = {
        "v": VERSION,
        "playbook": {"name": book.name, "file_hash": book.file_hash},
        "vars": job.extra_vars or {},
        "check_mode": bool(job.check_mode),
        "targets": [{"hostname": server.hostname, "environment": server.environment.value,
                     "address": server.ip_address, "port": server.ssh_port,
                     "user": server.ssh_user, "connection": server.connection}],
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed(ticket: Ticket) -> bool:
    """Whether the request of an approval ticket is no longer what it was at launch."""
    job = ticket.job
    return (ticket.request_digest is not None and job is not None
            and digest(job) != ticket.request_digest)


def what_changed(ticket: Ticket) -> str:
    """Which part most likely changed, for the message: the playbook (its row was updated
    since the request: a sync), else a target server, else "the request"."""
    job = ticket.job
    since = ticket.created_at
    if job is not None and since is not None:
        if _after(job.playbook.updated_at, since):
            return "the playbook"
        if _after(job.server.updated_at, since):
            return f"the server {job.server.hostname}"
    return "the request"


def void_reason(ticket: Ticket, *, since: str) -> str:
    """"Approval void: the playbook changed since it was approved." (`since`: "requested" or
    "approved")."""
    return f"{VOID_PREFIX}: {what_changed(ticket)} changed since it was {since}."


def void_changed(session: Session, job_id: str, *,
                 now: datetime | None = None) -> list[Job]:
    """Cancel each pending, approved job of the run of `job_id` (a uuid) whose request
    changed since its approval ("Approval void: … changed since it was approved"),
    audited `approval.void`; return those jobs. The worker runs it in its own transaction
    just before the claim (it audits, and the claim locks servers: one lock order each)."""
    now = now or utcnow()
    run_id = session.scalar(select(Job.run_id).where(Job.job_id == job_id))
    if run_id is None:
        return []
    tickets = session.scalars(
        select(Ticket).join(Job, Ticket.job_id == Job.id)
        .where(Job.run_id == run_id, Job.status == JobStatus.pending,
               Ticket.kind == TicketKind.approval, Ticket.status == TicketStatus.resolved,
               Ticket.request_digest.is_not(None))
        .order_by(Job.id, Ticket.id)
    ).unique().all()
    voided: list[Job] = []
    rows: list[tuple[Ticket, Job, str]] = []
    seen: set[int] = set()
    for ticket in tickets:
        job = ticket.job
        if job is None or job.id in seen or not changed(ticket):
            continue
        seen.add(job.id)
        why = void_reason(ticket, since="approved")
        moved = session.execute(
            update(Job).where(Job.id == job.id, Job.status == JobStatus.pending)
            .values(job_values(status=JobStatus.cancelled, completed_at=now,
                               error_message=why))
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            continue
        session.refresh(job)
        voided.append(job)
        rows.append((ticket, job, why))
    for ticket, job, why in rows:  # audited last: the chain head is locked until commit
        audit.record(session, user=None, action="approval.void", resource_type="ticket",
                     resource_id=ticket.ticket_id,
                     details={"job": job.job_id, "reason": why, "when": "claim",
                              "approved_digest": ticket.request_digest,
                              "digest": digest(job)})
    return voided


def _after(moment: datetime | None, since: datetime) -> bool:
    if moment is None:
        return False
    if (moment.tzinfo is None) != (since.tzinfo is None):
        moment, since = moment.replace(tzinfo=None), since.replace(tzinfo=None)
    return moment > since
