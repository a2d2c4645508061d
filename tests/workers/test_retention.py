"""Retention: old job logs move to compressed files, then out of the table; old jobs are
soft-deleted to `archived`."""

from __future__ import annotations

from datetime import timedelta

from db.base import utcnow
from db.models import JobStatus
from workers.logsink import LogSink
from workers.middleware import engine_for
from workers.retention import archive_old_logs, read_archive


def _old_job(world, lines: int, age: timedelta, status=JobStatus.success) -> str:
    job_id = world.job()
    moment = utcnow() - age
    world.set(job_id, status=status, completed_at=moment, started_at=moment,
              created_at=moment)
    sink = LogSink(engine_for(world.url), world.job_pk(job_id))
    sink.write_lines([(f"line {i}", "INFO") for i in range(1, lines + 1)],
                     at=moment.replace(tzinfo=None))
    sink.close()
    return job_id


def test_old_logs_are_archived_to_gzip_files_then_deleted_and_old_jobs_archived(world,
                                                                              tmp_path):
    old = _old_job(world, 2_500, timedelta(days=100))
    recent = _old_job(world, 10, timedelta(days=3))
    cutoff = utcnow() - timedelta(days=90)

    result = archive_old_logs(world.factory, tmp_path / "archive", older_than=cutoff)

    [path] = result.files
    rows = read_archive(path)
    assert [r["line"] for r in rows] == list(range(1, 2_501))
    assert rows[0]["content"] == "line 1" and rows[0]["job"] == old
    assert path.name == f"{old}-1-2500.jsonl.gz"
    assert result.lines_archived == 2_500
    assert world.logs(old) == []
    assert len(world.logs(recent)) == 10
    assert world.get(old).status == JobStatus.archived
    assert world.get(recent).status == JobStatus.success
    assert result.jobs_archived == 1


def test_a_second_pass_finds_nothing_more_to_do(world, tmp_path):
    _old_job(world, 5, timedelta(days=100))
    cutoff = utcnow() - timedelta(days=90)
    archive_old_logs(world.factory, tmp_path / "archive", older_than=cutoff)

    again = archive_old_logs(world.factory, tmp_path / "archive", older_than=cutoff)

    assert again.files == [] and again.lines_archived == 0 and again.jobs_archived == 0


def test_running_and_pending_jobs_are_never_archived(world, tmp_path):
    running = _old_job(world, 1, timedelta(days=100), status=JobStatus.running)

    archive_old_logs(world.factory, tmp_path / "archive", older_than=utcnow())

    assert world.get(running).status == JobStatus.running
