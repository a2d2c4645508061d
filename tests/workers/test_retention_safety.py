"""Retention is safe to run twice and after a crash, and archiving keeps how a job ended
(SQLite and MariaDB)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from core.clock_state import release_lease, take_lease
from db import queries
from db.base import utcnow
from db.models import JobLog, JobStatus
from slackui.jobs import status_text
from workers.logsink import LogSink
from workers.middleware import engine_for
from workers.retention import LEASE, archive_old_logs, read_archive


def _old_job(world, lines: int, *, status=JobStatus.success, days: int = 100) -> str:
    job_id = world.job()
    moment = utcnow() - timedelta(days=days)
    world.set(job_id, status=status, completed_at=moment, started_at=moment,
              created_at=moment)
    sink = LogSink(engine_for(world.url), world.job_pk(job_id))
    sink.write_lines([(f"line {i}", "INFO") for i in range(1, lines + 1)],
                     at=moment.replace(tzinfo=None))
    sink.close()
    return job_id


def _cutoff():
    return utcnow() - timedelta(days=90)


def _archived_lines(archive_dir) -> list[int]:
    return sorted(row["line"] for path in archive_dir.rglob("*.jsonl.gz")
                  for row in read_archive(path))


def test_a_second_clock_does_nothing_while_the_first_holds_the_retention_lease(world,
                                                                                 tmp_path):
    # given old logs, and another clock in the middle of its retention pass
    job_id = _old_job(world, 20)
    with world.factory.begin() as s:
        assert take_lease(s, LEASE, "other-clock", ttl=300)

    # when this clock runs retention
    skipped = archive_old_logs(world.factory, tmp_path / "a", older_than=_cutoff())

    # then it writes and deletes nothing
    assert skipped.skipped and skipped.files == [] and len(world.logs(job_id)) == 20
    # and once the other clock is done, the next pass archives everything once
    with world.factory.begin() as s:
        release_lease(s, LEASE, "other-clock")
    done = archive_old_logs(world.factory, tmp_path / "a", older_than=_cutoff())
    assert not done.skipped and done.lines_archived == 20
    assert _archived_lines(tmp_path / "a") == list(range(1, 21))


def test_an_expired_lease_of_a_dead_clock_is_taken_over(world, tmp_path):
    _old_job(world, 3)
    with world.factory.begin() as s:
        assert take_lease(s, LEASE, "dead-clock", ttl=0.001)

    result = archive_old_logs(world.factory, tmp_path / "a", older_than=_cutoff())

    assert result.lines_archived == 3


def test_a_crash_in_the_middle_of_the_deletes_is_finished_next_time_not_archived_twice(
        world, tmp_path):
    # given a pass that archived 2,500 lines of a job to a file, but crashed after deleting
    # only the first 1,000 of them (the rest are still in job_logs)
    job_id = _old_job(world, 2_500)
    archive = tmp_path / "archive"
    first = archive_old_logs(world.factory, archive, older_than=_cutoff())
    [path] = first.files
    moment = utcnow() - timedelta(days=100)
    with world.factory.begin() as s:
        s.add_all(JobLog(job_id=world.job_pk(job_id), line_number=n, content=f"line {n}",
                         timestamp=moment) for n in range(1_001, 2_501))

    # when retention runs again
    again = archive_old_logs(world.factory, archive, older_than=_cutoff())

    # then the left-over lines are deleted, no second file overlaps the first, and every
    # line is archived exactly once
    assert again.files == []
    assert world.logs(job_id) == []
    assert list(archive.rglob("*.jsonl.gz")) == [path]
    assert _archived_lines(archive) == list(range(1, 2_501))


def test_lines_written_after_a_first_archive_go_to_a_second_file_that_does_not_overlap(
        world, tmp_path):
    job_id = _old_job(world, 10)
    archive = tmp_path / "archive"
    archive_old_logs(world.factory, archive, older_than=_cutoff())
    moment = utcnow() - timedelta(days=95)
    with world.factory.begin() as s:
        s.add_all(JobLog(job_id=world.job_pk(job_id), line_number=n, content=f"line {n}",
                         timestamp=moment) for n in range(11, 16))

    second = archive_old_logs(world.factory, archive, older_than=_cutoff())

    assert [p.name for p in second.files] == [f"{job_id}-11-15.jsonl.gz"]
    assert _archived_lines(archive) == list(range(1, 16))


def test_a_partial_file_left_by_a_crashed_pass_is_removed_and_never_taken_for_an_archive(
        world, tmp_path):
    job_id = _old_job(world, 4)
    archive = tmp_path / "archive"
    archive.mkdir()
    leftover = archive / f".{job_id}.deadbeef.partial.gz"
    leftover.write_bytes(b"\x1f\x8b half a gzip stream")

    result = archive_old_logs(world.factory, archive, older_than=_cutoff())

    assert not leftover.exists()
    assert result.lines_archived == 4 and _archived_lines(archive) == [1, 2, 3, 4]


def test_an_archived_failed_job_still_says_it_failed_in_history_stats_and_its_status(
        world, tmp_path):
    # given a failed and a successful job, both past retention
    failed = _old_job(world, 2, status=JobStatus.failed, days=100)
    ok = _old_job(world, 2, status=JobStatus.success, days=100)
    with world.factory.begin() as s:
        before = s.execute(select(func.count()).select_from(JobLog)).scalar_one()
    assert before == 4

    # when retention archives them
    result = archive_old_logs(world.factory, tmp_path / "a", older_than=_cutoff())

    # then they are archived, and each keeps how it ended, with when it was archived
    assert result.jobs_archived == 2
    gone, kept = world.get(failed), world.get(ok)
    assert gone.status == kept.status == JobStatus.archived
    assert (gone.outcome, kept.outcome) == (JobStatus.failed, JobStatus.success)
    assert gone.archived_at is not None
    # the job view says so
    assert status_text(gone).endswith("archived · failed")
    # history of archived jobs still shows the outcome, and the outcome statistics count it
    with world.factory() as s:
        [row] = [j for j in queries.user_history(s, gone.user_id,
                                                 statuses=[JobStatus.archived])
                 if j.job_id == failed]
        assert row.outcome == JobStatus.failed
        assert queries.job_outcomes(s, days=365)[JobStatus.failed] == 1
