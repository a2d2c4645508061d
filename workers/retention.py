"""Retention: job_logs older than N days go to compressed files, then out of the table.

One archiver at a time: a pass first takes the `retention` lease (`core.clock_state`, a row
in the database, database time) and renews it before every job; a second clock finds it
taken and does nothing, so two clocks never write or delete the same lines.

For each job with old lines, the lines from its first remaining one up to its last old one
(by line number) are written to one gzip JSON-lines file,
`<archive_dir>/<YYYY-MM-DD>/<job uuid>-<first line>-<last line>.jsonl.gz` (the day the job
was created; one JSON object per line: job, line, level, ts, content). The file is written
under a name unique to the attempt (`.<job uuid>.<attempt>.partial.gz`), fsynced, linked to
its final name only if that name is free (never overwritten), the directory fsynced, and
only then are the lines deleted from job_logs in batches by primary key.

Safe to run again after a crash at any point:
- a partial file is never taken for an archive (the holder of the lease removes leftovers);
- before archiving a job, the lines that an existing archive file of the job already
  holds (its name gives the range) are deleted first — a crash in the middle of the
  deletes is finished, not archived a second time — so a job's archives never overlap and
  no line is lost or duplicated.

Finished jobs (success, failed, cancelled) that completed before the cutoff are soft-deleted
by moving them to `archived`; their rows (and tickets, audit) stay, `outcome` keeps how they
ended and `archived_at` says when (database time).
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock_state import release_lease, take_lease
from db.base import utcnow
from db.clock import db_now
from db.models import Job, JobLog, JobStatus, job_values

log = logging.getLogger(__name__)

READ_CHUNK = 5_000
DELETE_CHUNK = 1_000
LEASE = "retention"
LEASE_TTL = timedelta(minutes=5)
_ARCHIVE_NAME = re.compile(r"^(?P<job>[0-9a-f-]{36})-(?P<first>\d+)-(?P<last>\d+)\.jsonl\.gz$")


@dataclass
class RetentionResult:
    """What one retention pass did (`skipped`: another clock held the lease)."""

    files: list[Path] = field(default_factory=list)
    lines_archived: int = 0
    jobs_archived: int = 0
    skipped: bool = False


class LeaseLost(RuntimeError):
    """Another clock took the retention lease over (ours expired): stop at once."""


def cutoff_for(days: int, *, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=days)


def archive_old_logs(factory: sessionmaker[Session], archive_dir: Path, *,
                     older_than: datetime, max_jobs: int = 500,
                     holder: str | None = None) -> RetentionResult:
    """Archive and delete job_logs rows older than `older_than`; archive finished jobs.

    Handles at most `max_jobs` jobs' logs per call (the clock calls it again later). Does
    nothing (`skipped`) while another clock holds the retention lease.
    """
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    result = RetentionResult()
    lease = _Lease(factory, holder)
    if not lease.renew():
        log.info("retention: another clock is archiving; skipped")
        result.skipped = True
        return result
    try:
        _remove_partials(archive_dir)
        with factory() as session:
            job_pks = session.execute(
                select(JobLog.job_id).where(JobLog.timestamp < older_than)
                .group_by(JobLog.job_id).order_by(JobLog.job_id).limit(max_jobs)
            ).scalars().all()
        for job_pk in job_pks:
            lease.check()
            path, count = _archive_job(factory, archive_dir, job_pk, older_than, lease)
            if path is not None:
                result.files.append(path)
                result.lines_archived += count
        lease.check()
        with factory.begin() as session:
            result.jobs_archived = session.execute(
                update(Job)
                .where(Job.status.in_([JobStatus.success, JobStatus.failed,
                                       JobStatus.cancelled]),
                       Job.completed_at < older_than)
                # outcome first: MySQL evaluates SET left to right with updated values
                .ordered_values((Job.outcome, func.coalesce(Job.outcome, Job.status)),
                                *job_values(status=JobStatus.archived).items(),
                                (Job.archived_at, db_now()))
                .execution_options(synchronize_session=False)
            ).rowcount
    except LeaseLost:
        log.warning("retention: the lease went to another clock; this pass stops here")
    finally:
        lease.release()
    if result.lines_archived or result.jobs_archived:
        log.info("retention: %d log lines archived to %d files, %d jobs archived",
                 result.lines_archived, len(result.files), result.jobs_archived)
    return result


class _Lease:
    def __init__(self, factory: sessionmaker[Session], holder: str) -> None:
        self.factory = factory
        self.holder = holder

    def renew(self) -> bool:
        with self.factory.begin() as session:
            return take_lease(session, LEASE, self.holder, ttl=LEASE_TTL)

    def check(self) -> None:
        if not self.renew():
            raise LeaseLost(self.holder)

    def release(self) -> None:
        with self.factory.begin() as session:
            release_lease(session, LEASE, self.holder)


def _remove_partials(archive_dir: Path) -> None:
    """Partial files left by a crashed pass (only the lease holder writes any)."""
    if archive_dir.is_dir():
        for leftover in archive_dir.glob(".*.partial.gz"):
            leftover.unlink(missing_ok=True)


def _archived_ranges(dirs: list[Path], job_uuid: str) -> list[tuple[int, int]]:
    ranges = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in directory.glob(f"{job_uuid}-*.jsonl.gz"):
            match = _ARCHIVE_NAME.match(path.name)
            if match and match["job"] == job_uuid:
                ranges.append((int(match["first"]), int(match["last"])))
    return ranges


def _delete_lines(factory: sessionmaker[Session], job_pk: int, first: int, last: int) -> int:
    """Delete the job's lines first..last, in batches by primary key; idempotent."""
    deleted = 0
    while True:
        with factory.begin() as session:
            ids = session.execute(
                select(JobLog.id).where(JobLog.job_id == job_pk,
                                        JobLog.line_number.between(first, last))
                .order_by(JobLog.id).limit(DELETE_CHUNK)
            ).scalars().all()
            if not ids:
                return deleted
            session.execute(delete(JobLog).where(JobLog.id.in_(ids))
                            .execution_options(synchronize_session=False))
            deleted += len(ids)


def _archive_job(factory: sessionmaker[Session], archive_dir: Path, job_pk: int,
                 older_than: datetime, lease: _Lease) -> tuple[Path | None, int]:
    with factory() as session:
        job_uuid, created = session.execute(
            select(Job.job_id, Job.created_at).where(Job.id == job_pk)).one()
        oldest = session.execute(
            select(func.min(JobLog.timestamp)).where(JobLog.job_id == job_pk)).scalar()
    day = created.date().isoformat()
    dirs = [archive_dir / day]
    if oldest is not None and oldest.date().isoformat() != day:
        dirs.append(archive_dir / oldest.date().isoformat())  # files of earlier versions
    for first, last in _archived_ranges(dirs, job_uuid):
        finished = _delete_lines(factory, job_pk, first, last)
        if finished:
            log.info("retention: job %s lines %d-%d were archived already; %d left-over "
                     "rows deleted", job_uuid, first, last, finished)
    with factory() as session:
        upto = session.execute(
            select(func.max(JobLog.line_number))
            .where(JobLog.job_id == job_pk, JobLog.timestamp < older_than)).scalar()
        if upto is None:
            return None, 0
        archive_dir.mkdir(parents=True, exist_ok=True)
        tmp = archive_dir / f".{job_uuid}.{uuid.uuid4().hex}.partial.gz"
        count, first = _write(session, tmp, job_uuid, job_pk, upto)
    if count == 0:
        tmp.unlink(missing_ok=True)
        return None, 0
    target_dir = archive_dir / day
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{job_uuid}-{first}-{upto}.jsonl.gz"
    try:
        lease.check()  # nobody else may have taken these lines meanwhile
        os.link(tmp, target)  # never replaces an existing archive
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target_dir)
    _delete_lines(factory, job_pk, first, upto)
    return target, count


def _write(session: Session, tmp: Path, job_uuid: str, job_pk: int,
           upto: int) -> tuple[int, int | None]:
    """Write the job's lines up to `upto` to `tmp`, fsynced; return (count, first line)."""
    count, first, after = 0, None, 0
    with open(tmp, "wb") as raw:
        out = io.TextIOWrapper(gzip.GzipFile(fileobj=raw, mode="wb"), encoding="utf-8")
        while True:
            rows = session.execute(
                select(JobLog.line_number, JobLog.log_level, JobLog.timestamp, JobLog.content)
                .where(JobLog.job_id == job_pk, JobLog.line_number > after,
                       JobLog.line_number <= upto)
                .order_by(JobLog.line_number).limit(READ_CHUNK)
            ).all()
            if not rows:
                break
            for row in rows:
                out.write(json.dumps({
                    "job": job_uuid, "line": row.line_number,
                    "level": row.log_level.value, "ts": row.timestamp.isoformat(),
                    "content": row.content}, ensure_ascii=False) + "\n")
            if first is None:
                first = rows[0].line_number
            count += len(rows)
            after = rows[-1].line_number
        out.close()  # ends the gzip stream; `raw` stays open
        raw.flush()
        os.fsync(raw.fileno())
    return count, first


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_archive(path: Path) -> list[dict[str, object]]:
    """The rows of one archive file (for tests and operators restoring a log)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]
