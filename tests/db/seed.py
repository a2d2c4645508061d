"""Rows for database tests: a small world of users, servers and playbooks, jobs, logs, audit.

Two speeds: `World` builds a handful of ORM objects for behaviour tests; `bulk_insert`
writes thousands of rows as multi-row INSERTs (the query-plan tests need enough rows for
the optimizer to prefer an index over a scan).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from core import audit
from db.base import Base, utcnow
from db.models import (
    AuditLog,
    Environment,
    Job,
    JobLog,
    JobStatus,
    LogLevel,
    Playbook,
    Role,
    Server,
    User,
)

_serial = itertools.count(1)


@dataclass
class World:
    """Two users, a development and a production server, one playbook."""

    alice: User
    bob: User
    web: Server
    db: Server
    ping: Playbook

    @classmethod
    def create(cls, session: Session) -> World:
        n = next(_serial)
        alice = User(
            username=f"alice{n}",
            email=f"alice{n}@example.com",
            role=Role.operator,
            slack_user_id=f"UA{n}",
        )
        bob = User(
            username=f"bob{n}", email=f"bob{n}@example.com", role=Role.admin, slack_user_id=f"UB{n}"
        )
        web = Server(
            hostname=f"web-{n}",
            ip_address="10.0.0.1",
            tags=["web"],
            environment=Environment.development,
        )
        db = Server(
            hostname=f"db-{n}",
            ip_address="10.0.0.2",
            tags=["db"],
            environment=Environment.production,
        )
        ping = Playbook(
            name=f"ping{n}", file_path="ping.yml", file_hash="a" * 64, tags=["smoke"], variables={}
        )
        session.add_all([alice, bob, web, db, ping])
        session.flush()
        return cls(alice=alice, bob=bob, web=web, db=db, ping=ping)

    def job(
        self,
        session: Session,
        *,
        user: User | None = None,
        server: Server | None = None,
        status: JobStatus = JobStatus.success,
        created_at: datetime | None = None,
        outcome: JobStatus | None = None,
    ) -> Job:
        job = Job(
            playbook=self.ping,
            server=server or self.web,
            user=user or self.alice,
            status=status,
            extra_vars={"version": "1.2"},
            created_at=created_at or utcnow(),
        )
        if status == JobStatus.archived:  # an archived job keeps how it ended (0006)
            job.outcome = outcome or JobStatus.success
        session.add(job)
        session.flush()
        return job


def add_logs(session: Session, job: Job, lines: Iterable[int]) -> None:
    """Log lines with these numbers (in the order given), content `line N`."""
    session.add_all(
        JobLog(job_id=job.id, line_number=n, content=f"line {n}", log_level=LogLevel.INFO)
        for n in lines
    )
    session.flush()


def add_audit(
    session: Session,
    *,
    resource_type: str,
    resource_id: str,
    action: str = "job.launch",
    user: User | None = None,
    at: datetime | None = None,
) -> AuditLog:
    row = AuditLog(
        user_id=user.id if user else None,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        details={"outcome": "allowed"},
        timestamp=at or utcnow(),
    )
    return audit.append(session, row)


def bulk_insert(
    connection: Connection, model: type[Base], rows: list[Mapping[str, Any]], chunk: int = 1000
) -> None:
    """Insert `rows` in chunks of multi-row INSERT statements.

    Audit rows are chained (prev_hash/row_hash, as `core.audit` would) onto an empty trail.
    """
    if model is AuditLog:
        rows = _chained(rows)
    for start in range(0, len(rows), chunk):
        connection.execute(insert(model), rows[start : start + chunk])


def _chained(rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    prev, chained = audit.GENESIS_HASH, []
    for row in rows:
        values = {"actor_user_id": row.get("user_id"), **row}
        values["row_hash"] = audit.chain_hash(prev, audit.canonical(AuditLog(**values)))
        values["prev_hash"] = prev
        prev = values["row_hash"]
        chained.append(values)
    return chained


def job_row(
    pk: int,
    *,
    user_id: int,
    server_id: int,
    playbook_id: int,
    status: str,
    created_at: datetime,
) -> dict[str, Any]:
    """A `jobs` row as a plain mapping for `bulk_insert`."""
    return {
        "id": pk,
        "job_id": str(uuid.UUID(int=pk)),
        "playbook_id": playbook_id,
        "server_id": server_id,
        "user_id": user_id,
        "status": status,
        "extra_vars": {},
        "created_at": created_at,
        "check_mode": False,
        "cancel_requested": False,
    }


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)
