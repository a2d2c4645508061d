"""Least privilege on MariaDB: a runtime user set up with `playbot db grants` runs the app,
but cannot UPDATE, DELETE, TRUNCATE or DROP the audit trail, nor change the schema."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from core import audit
from db import queries
from db.base import utcnow
from db.grants import RUNTIME_PRIVILEGES
from db.models import (
    AuditLog,
    Base,
    Job,
    JobLog,
    JobStatus,
    LogLevel,
    Server,
    Ticket,
    TicketKind,
    TicketStatus,
)
from db.session import make_engine, make_session_factory
from tests.db.seed import World
from tests.support.cli import run_cli
from tests.support.servers import MariaDBServer

pytestmark = pytest.mark.mariadb

ACCESS_DENIED = 1142  # ER_TABLEACCESS_DENIED_ERROR: "<COMMAND> command denied to user ..."
_users = itertools.count(1)


@pytest.fixture
def runtime_factory(mariadb_server: MariaDBServer, mariadb_url: str):
    """A session factory connected as a runtime user granted exactly what `db grants` prints."""
    database = mariadb_url.rsplit("/", 1)[1].split("?")[0]
    user, password = f"playbot_rt{next(_users)}", "runtime-password"
    result = run_cli("db", "grants", user, "--host", "127.0.0.1", "--database", database)
    assert result.exit_code == 0, result.output
    statements = [line for line in result.stdout.splitlines() if line.startswith("GRANT ")]
    root = mariadb_server.root_connection()
    with root.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        for statement in statements:
            cursor.execute(statement)
    root.close()
    engine = make_engine(mariadb_server.url(database, user, password))
    yield make_session_factory(engine)
    engine.dispose()


def _error_code(exc: pytest.ExceptionInfo[DBAPIError]) -> int:
    return exc.value.orig.args[0]


def test_grants_cover_every_table_of_the_schema():
    assert set(RUNTIME_PRIVILEGES) == {*Base.metadata.tables, "alembic_version"}
    assert RUNTIME_PRIVILEGES["audit_logs"] == ("SELECT", "INSERT")
    ddl = {"CREATE", "ALTER", "DROP", "INDEX", "TRIGGER", "REFERENCES", "ALL", "GRANT"}
    assert not ddl & {p for privileges in RUNTIME_PRIVILEGES.values() for p in privileges}


def test_runtime_user_does_the_apps_everyday_writes(runtime_factory):
    with runtime_factory() as session:
        # a Slack user is provisioned, logs in, gets a role; servers and playbooks registered
        world = World.create(session)
        world.alice.last_login = utcnow()
        world.web.description = "imported from inventory"
        world.ping.file_hash = "b" * 64
        session.commit()

        # a job is launched, claimed under a row lock on its server, and runs
        job = world.job(session, status=JobStatus.pending)
        audit.record(
            session,
            user=world.alice,
            action="job.launch",
            resource_type="job",
            resource_id=job.job_id,
            details={"playbook": world.ping.name},
        )
        session.commit()
        session.execute(select(Server.id).where(Server.id == job.server_id).with_for_update())
        claimed = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.pending)
            .values(status=JobStatus.running, started_at=utcnow(), heartbeat_at=utcnow())
        )
        assert claimed.rowcount == 1
        session.add_all(
            JobLog(
                job_id=job.id,
                line_number=n,
                content=f"line {n}",
                log_level=LogLevel.INFO,
                timestamp=utcnow() - timedelta(days=100),
            )
            for n in range(1, 51)
        )
        session.commit()

        # it fails, an incident ticket is opened, taken and resolved
        job.status, job.completed_at, job.error_message = JobStatus.failed, utcnow(), "boom"
        ticket = Ticket(
            job_id=job.id, created_by=world.alice.id, title="ping failed", kind=TicketKind.incident
        )
        session.add(ticket)
        session.commit()
        ticket.status, ticket.assignee_id = TicketStatus.in_progress, world.bob.id
        session.commit()
        ticket.status, ticket.resolved_at, ticket.resolution_note = (
            TicketStatus.resolved,
            utcnow(),
            "fixed the disk",
        )
        session.commit()

        # retention removes old log lines; the job itself is archived, never deleted
        session.execute(delete(JobLog).where(JobLog.timestamp < utcnow() - timedelta(days=90)))
        job.status = JobStatus.archived
        session.commit()

        # and every read the app makes works
        assert session.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert queries.job_with_logs(session, job.id).logs == []
        assert [row.action for row in queries.audit_trail(session, "job", job.job_id)] == [
            "job.launch"
        ]
        assert queries.job_stats(session)[JobStatus.archived] == 1


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("UPDATE audit_logs SET action = 'nothing'", "UPDATE"),
        ("DELETE FROM audit_logs", "DELETE"),
        ("TRUNCATE TABLE audit_logs", "DROP"),  # TRUNCATE needs DROP, and skips triggers
        ("DROP TABLE audit_logs", "DROP"),
        ("DROP TRIGGER audit_logs_no_delete", "TRIGGER"),
        ("ALTER TABLE audit_logs ADD COLUMN note TEXT", "ALTER"),
        ("RENAME TABLE audit_logs TO audit_logs_old", "ALTER"),
        ("DELETE FROM jobs", "DELETE"),  # jobs are archived, not deleted
        ("TRUNCATE TABLE job_logs", "DROP"),
        ("CREATE TABLE scratch (id INT)", "CREATE"),
    ],
)
def test_runtime_user_cannot_rewrite_the_audit_trail_or_the_schema(runtime_factory, sql, refused):
    # given an audit row written by the app
    with runtime_factory() as session:
        audit.record(
            session, user=None, action="server.add", resource_type="server", resource_id="1"
        )
        session.commit()

        # when the runtime user tries to change, empty or drop it (or the schema)
        with pytest.raises(DBAPIError) as denied:
            session.execute(text(sql))
            session.commit()
        session.rollback()

        # then the server refuses the command for lack of privilege, and the row is still there
        message = str(denied.value.orig)
        assert _error_code(denied) == ACCESS_DENIED, message
        assert refused in message.split(" command denied")[0], message
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 1
