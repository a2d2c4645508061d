"""Rows the figures need before they measure: a user, a server, a playbook, finished jobs.

Built through the ORM models (so new columns with defaults keep working); the bulk of
`job_logs` for the read benchmark is loaded with LOAD DATA LOCAL INFILE, see `load_job_logs`.
"""

from __future__ import annotations

import os
import random
import tempfile
from datetime import UTC, datetime, timedelta

import pymysql
from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from db.models import Environment, Job, JobStatus, Playbook, Role, Server, User


def base_rows(session: Session, *, slack_user_id: str = "U_BENCH", role: Role = Role.operator,
              hostname: str = "local", playbook: str = "ping") -> tuple[User, Server, Playbook]:
    """One user, one local development server, one playbook row; flushed, not committed."""
    user = User(username=slack_user_id.lower(), role=role, slack_user_id=slack_user_id)
    server = Server(hostname=hostname, environment=Environment.development, connection="local",
                    ip_address="127.0.0.1")
    book = Playbook(name=playbook, file_path=f"{playbook}.yml", file_hash="0" * 64)
    session.add_all([user, server, book])
    session.flush()
    return user, server, book


def finished_jobs(session: Session, count: int, *, user: User, server: Server,
                  playbook: Playbook) -> list[int]:
    """Insert `count` successful jobs in one statement; their primary keys in order."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"job_id": f"{i:08x}-0000-4000-8000-{i:012x}", "playbook_id": playbook.id,
         "server_id": server.id, "user_id": user.id, "status": JobStatus.success,
         "extra_vars": {}, "created_at": start + timedelta(minutes=i),
         "started_at": start + timedelta(minutes=i),
         "completed_at": start + timedelta(minutes=i, seconds=30)}
        for i in range(1, count + 1)
    ]
    for chunk in range(0, len(rows), 2000):
        session.execute(insert(Job), rows[chunk:chunk + 2000])
    ids = [job_id for (job_id,) in session.query(Job.id).order_by(Job.id)]
    return ids[-count:]


_HOSTS = [f"web-{n:02d}" for n in range(1, 21)]
_TEMPLATES = [
    "TASK [{role} : {task}] " + "*" * 60,
    "ok: [{host}]",
    "changed: [{host}] => (item={item})",
    "ok: [{host}] => (item={item})",
    "skipping: [{host}] => (item={item})  => "
    '{{"changed": false, "skip_reason": "Conditional result was False"}}',
    "    \"msg\": \"Deployed release {item} to {host}: 42 files, 3 services restarted\"",
    "PLAY RECAP " + "*" * 70,
    "{host}                     : ok=12   changed=3    unreachable=0    failed=0    skipped=2",
]


def log_line(rng: random.Random, number: int) -> str:
    """A plausible line of Ansible output (12-120 characters)."""
    template = _TEMPLATES[rng.randrange(len(_TEMPLATES))]
    return template.format(role="webapp", task=f"step {number}", host=rng.choice(_HOSTS),
                           item=f"pkg-{number}")


def write_log_file(job_ids: list[int], lines_per_job: int, directory: str) -> tuple[str, int]:
    """A tab-separated file of job_logs rows (ids from 1, in job/line order); path and row count.

    Job n's lines start at minute n of 2026 and follow each other within that minute.
    """
    rng = random.Random(7)
    pool = [log_line(rng, n) for n in range(4096)]
    step_ms = max(1, min(20, 59_000 // max(lines_per_job, 1)))
    offsets = [f"{line * step_ms / 1000:09.6f}" for line in range(lines_per_job + 1)]
    start = datetime(2026, 1, 1)
    path = os.path.join(directory, "job_logs.tsv")
    row_id = 0
    with open(path, "w", encoding="utf-8") as out:
        for index, job_id in enumerate(job_ids):
            minute = (start + timedelta(minutes=index)).strftime("%Y-%m-%d %H:%M:")
            chunk = []
            for line in range(1, lines_per_job + 1):
                row_id += 1
                level = "ERROR" if line % 997 == 0 else "INFO"
                content = pool[(row_id * 2654435761) & 4095]
                chunk.append(f"{row_id}\t{job_id}\t{line}\t{content}\t{level}\t"
                             f"{minute}{offsets[line]}\n")
            out.write("".join(chunk))
    return path, row_id


def load_job_logs(database_url: str, job_ids: list[int], lines_per_job: int) -> int:
    """Bulk-load `lines_per_job` rows for each job with LOAD DATA LOCAL INFILE; rows loaded.

    Rows arrive in primary-key and (job_id, line_number) order with unique and foreign-key
    checks off for the loading session, so InnoDB appends instead of searching.
    """
    url = make_url(database_url)
    with tempfile.TemporaryDirectory(prefix="playbot-bench-") as directory:
        path, rows = write_log_file(job_ids, lines_per_job, directory)
        conn = pymysql.connect(host=url.host, port=url.port, user=url.username,
                               password=url.password, database=url.database, charset="utf8mb4",
                               local_infile=True, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute("SET unique_checks=0, foreign_key_checks=0")
                cur.execute(
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE job_logs "
                    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' "
                    "(id, job_id, line_number, content, log_level, timestamp)"
                )
                loaded = cur.rowcount
            conn.commit()
            with conn.cursor() as cur:
                cur.execute("ANALYZE TABLE job_logs")
                cur.fetchall()
        finally:
            conn.close()
    if loaded != rows:
        raise RuntimeError(f"LOAD DATA loaded {loaded} of {rows} job_logs rows")
    return rows


def pymysql_connect(database_url: str, **kwargs: object) -> pymysql.Connection:
    """A raw PyMySQL connection to the database a SQLAlchemy URL names."""
    url = make_url(database_url)
    return pymysql.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                           database=url.database, charset="utf8mb4", **kwargs)
