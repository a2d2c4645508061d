"""Retention: job_logs older than N days go to compressed files, then out of the table.

For each job with old lines, those lines are written to one gzip JSON-lines file,
`<archive_dir>/<YYYY-MM-DD>/<job uuid>-<first line>-<last line>.jsonl.gz` (the date of the
first line; one JSON object per line: job, line, level, timestamp, content), fsynced and
renamed into place, and only then deleted from job_logs in batches by primary key. Running
it again after a crash rewrites the same file name, so nothing is lost or duplicated.

Finished jobs (success, failed, cancelled) that completed before the cutoff are soft-deleted
by moving them to `archived`; their rows (and tickets, audit) stay.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.base import utcnow
from db.models import Job, JobLog, JobStatus, job_values

log = logging.getLogger(__name__)

READ_CHUNK = 5_000
DELETE_CHUNK = 1_000


@dataclass
class RetentionResult:
    """What one retention pass did."""

    files: list[Path] = field(default_factory=list)
    lines_archived: int = 0
    jobs_archived: int = 0


def cutoff_for(days: int, *, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)


def archive_old_logs(factory: sessionmaker[Session], archive_dir: Path, *,
                     older_than: datetime, max_jobs: int = 500) -> RetentionResult:
    """Archive and delete job_logs rows older than `older_than`; archive finished jobs.

    Handles at most `max_jobs` jobs' logs per call (the clock calls it again later).
    """
    result = RetentionResult()
    with factory() as session:
        job_pks = session.execute(
            select(JobLog.job_id).where(JobLog.timestamp < older_than)
            .group_by(JobLog.job_id).order_by(JobLog.job_id).limit(max_jobs)
        ).scalars().all()
    for job_pk in job_pks:
        path, count = _archive_job(factory, archive_dir, job_pk, older_than)
        if path is not None:
            result.files.append(path)
            result.lines_archived += count
    with factory.begin() as session:
        result.jobs_archived = session.execute(
            update(Job)
            .where(Job.status.in_([JobStatus.success, JobStatus.failed, JobStatus.cancelled]),
                   Job.completed_at < older_than)
            .values(job_values(status=JobStatus.archived))
            .execution_options(synchronize_session=False)
        ).rowcount
    if result.lines_archived or result.jobs_archived:
        log.info("retention: %d log lines archived to %d files, %d jobs archived",
                 result.lines_archived, len(result.files), result.jobs_archived)
    return result


def _archive_job(factory: sessionmaker[Session], archive_dir: Path, job_pk: int,
                 older_than: datetime) -> tuple[Path | None, int]:
    with factory() as session:
        job_uuid = session.execute(select(Job.job_id).where(Job.id == job_pk)).scalar_one()
        ids: list[int] = []
        first = last = None
        day = None
        archive_dir.mkdir(parents=True, exist_ok=True)
        tmp = archive_dir / f".{job_uuid}.partial.gz"
        with open(tmp, "wb") as raw:
            out = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb"), encoding="utf-8")
            after = 0
            while True:
                rows = session.execute(
                    select(JobLog.id, JobLog.line_number, JobLog.log_level, JobLog.timestamp,
                           JobLog.content)
                    .where(JobLog.job_id == job_pk, JobLog.timestamp < older_than,
                           JobLog.line_number > after)
                    .order_by(JobLog.line_number).limit(READ_CHUNK)
                ).all()
                if not rows:
                    break
                for row in rows:
                    out.write(json.dumps({
                        "job": job_uuid, "line": row.line_number,
                        "level": row.log_level.value, "ts": row.timestamp.isoformat(),
                        "content": row.content}, ensure_ascii=False) + "\n")
                    ids.append(row.id)
                if first is None:
                    first, day = rows[0].line_number, rows[0].timestamp.date().isoformat()
                last = rows[-1].line_number
                after = last
            out.close()  # ends the gzip stream; `raw` stays open
            raw.flush()
            os.fsync(raw.fileno())
    if not ids:
        tmp.unlink(missing_ok=True)
        return None, 0
    target_dir = archive_dir / str(day)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{job_uuid}-{first}-{last}.jsonl.gz"
    os.replace(tmp, target)
    for start in range(0, len(ids), DELETE_CHUNK):
        with factory.begin() as session:
            session.execute(delete(JobLog).where(JobLog.id.in_(ids[start:start + DELETE_CHUNK]))
                            .execution_options(synchronize_session=False))
    return target, len(ids)


def read_archive(path: Path) -> list[dict[str, object]]:
    """The rows of one archive file (for tests and operators restoring a log)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]
