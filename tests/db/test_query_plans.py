"""On MariaDB, the ERD's query patterns 1-4 are answered from the index the ERD names.

The database holds a few thousand jobs, log lines and audit rows (enough for the optimizer
to prefer an index to a scan), with statistics refreshed by ANALYZE TABLE. Each test runs
the real function from db/queries.py, captures the exact SQL and parameters it sent, and
asks MariaDB to EXPLAIN that statement.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from core.jobs import job_in_progress
from db import queries
from db.models import AuditLog, Job, JobLog, Playbook, Server, User
from db.session import make_engine
from tests.db.seed import bulk_insert, job_row
from tests.support.servers import MariaDBServer

pytestmark = pytest.mark.mariadb

USERS, SERVERS, PLAYBOOKS, JOBS = 50, 20, 10, 4000
LOGGED_JOBS, LINES_PER_JOB = 20, 200
AUDIT_ROWS = 3000
# A realistic mix: mostly finished runs, few running or waiting at any time.
STATUS_MIX = (
    ["success"] * 80 + ["failed"] * 12 + ["cancelled"] * 3 + ["pending"] * 3 + ["running"] * 2
)


@dataclass
class Plan:
    table: str
    key: str | None
    extra: str


@pytest.fixture(scope="module")
def engine(mariadb_server: MariaDBServer, _mariadb_template: str) -> Iterator[Engine]:
    url = mariadb_server.create_database("playbot_plans", schema_of=_mariadb_template)
    engine = make_engine(url)
    _seed(engine)
    yield engine
    engine.dispose()


def _seed(engine: Engine) -> None:
    rnd = random.Random(3)
    start = datetime(2026, 1, 1)
    with engine.begin() as c:
        bulk_insert(
            c,
            User,
            [
                {
                    "id": i,
                    "username": f"user{i}",
                    "role": "operator",
                    "is_active": True,
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(1, USERS + 1)
            ],
        )
        bulk_insert(
            c,
            Server,
            [
                {
                    "id": i,
                    "hostname": f"host{i}",
                    "ssh_port": 22,
                    "tags": [],
                    "environment": "development",
                    "is_active": True,
                    "connection": "ssh",
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(1, SERVERS + 1)
            ],
        )
        bulk_insert(
            c,
            Playbook,
            [
                {
                    "id": i,
                    "name": f"play{i}",
                    "file_path": f"play{i}.yml",
                    "file_hash": "0" * 64,
                    "tags": [],
                    "variables": {},
                    "is_active": True,
                    "allow_free_vars": False,
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(1, PLAYBOOKS + 1)
            ],
        )
        bulk_insert(
            c,
            Job,
            [
                job_row(
                    i,
                    user_id=rnd.randint(1, USERS),
                    server_id=rnd.randint(1, SERVERS),
                    playbook_id=rnd.randint(1, PLAYBOOKS),
                    status=rnd.choice(STATUS_MIX),
                    created_at=start + timedelta(minutes=i),
                )
                for i in range(1, JOBS + 1)
            ],
        )
        bulk_insert(
            c,
            JobLog,
            [
                {
                    "job_id": job,
                    "line_number": n,
                    "content": f"TASK [step {n}] ok",
                    "log_level": "INFO",
                    "timestamp": start,
                }
                for job in range(1, LOGGED_JOBS + 1)
                for n in range(1, LINES_PER_JOB + 1)
            ],
        )
        bulk_insert(
            c,
            AuditLog,
            [
                {
                    "user_id": rnd.randint(1, USERS),
                    "action": rnd.choice(["job.launch", "job.cancel"]),
                    "resource_type": rnd.choice(["job", "server", "playbook", "user"]),
                    "resource_id": str(rnd.randint(1, 100)),
                    "details": {},
                    "timestamp": start + timedelta(seconds=i),
                }
                for i in range(AUDIT_ROWS)
            ],
        )
        for table in ("users", "servers", "playbooks", "jobs", "job_logs", "audit_logs"):
            c.exec_driver_sql(f"ANALYZE TABLE {table}").all()


def explain(engine: Engine, call: Callable[[Session], Any], table: str) -> list[Plan]:
    """Run `call` on a session; EXPLAIN the first statement it sent that reads `table`."""
    sent: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            call(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = next((sql, p) for sql, p in sent if f"FROM {table}" in sql)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        raw.close()
    return [Plan(row["table"], row["key"], row["Extra"] or "") for row in rows]


def test_pattern_1_recent_jobs_by_status_use_idx_jobs_status_created(engine):
    [plan] = explain(engine, lambda s: queries.recent_jobs(s, status="running"), "jobs")
    assert (plan.table, plan.key) == ("jobs", "idx_jobs_status_created")
    assert "filesort" not in plan.extra  # newest first straight from the index


def test_pattern_1_without_a_status_reads_the_newest_rows_by_primary_key(engine):
    [plan] = explain(engine, lambda s: queries.recent_jobs(s), "jobs")
    assert (plan.table, plan.key) == ("jobs", "PRIMARY")
    assert "filesort" not in plan.extra


def test_pattern_2_job_and_its_joins_use_primary_keys(engine):
    plans = explain(engine, lambda s: queries.job_with_logs(s, 7), "jobs")
    assert {(p.table.split("_")[0], p.key) for p in plans} == {
        ("jobs", "PRIMARY"),
        ("playbooks", "PRIMARY"),
        ("servers", "PRIMARY"),
        ("users", "PRIMARY"),
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda s: queries.job_with_logs(s, 7),
        lambda s: queries.job_with_logs(s, 7, last_lines=20),
        lambda s: queries.log_page(s, 7, after_line=100, limit=50),
    ],
    ids=["all-lines", "latest-lines", "page-from-the-middle"],
)
def test_pattern_2_log_lines_use_idx_joblogs_job_line(engine, call):
    [plan] = explain(engine, call, "job_logs")
    assert (plan.table, plan.key) == ("job_logs", "idx_joblogs_job_line")
    assert "filesort" not in plan.extra


def test_pattern_3_user_history_uses_idx_jobs_user_status(engine):
    [plan] = explain(engine, lambda s: queries.user_history(s, 7, ["failed", "cancelled"]), "jobs")
    assert (plan.table, plan.key) == ("jobs", "idx_jobs_user_status")


def test_pattern_4_audit_trail_uses_idx_audit_resource(engine):
    [plan] = explain(engine, lambda s: queries.audit_trail(s, "server", "42"), "audit_logs")
    assert (plan.table, plan.key) == ("audit_logs", "idx_audit_resource")
    assert "filesort" not in plan.extra


def test_the_identical_launch_lookup_reads_one_row_of_idx_jobs_active_fingerprint(engine):
    # given the jobs in progress carry their launch fingerprint (only this test reads it)
    with engine.begin() as c:
        c.exec_driver_sql(
            "UPDATE jobs SET active_fingerprint = LPAD(HEX(id), 64, '0') "
            "WHERE status IN ('pending', 'running') AND active_fingerprint IS NULL"
        )
        wanted = c.exec_driver_sql(
            "SELECT active_fingerprint FROM jobs WHERE active_fingerprint IS NOT NULL LIMIT 1"
        ).scalar_one()
        c.exec_driver_sql("ANALYZE TABLE jobs").all()
    # when launch looks for the job in progress of an identical launch
    plans = explain(engine, lambda s: job_in_progress(s, wanted), "jobs")
    # then it is one lookup of the unique index
    [plan] = [p for p in plans if p.table == "jobs"]
    assert plan.key == "idx_jobs_active_fingerprint"
