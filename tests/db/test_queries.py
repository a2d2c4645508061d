"""The ERD's five query patterns (db/queries.py) return what the dashboard, job view, user
history, audit trail and statistics show — on SQLite and on MariaDB."""

from __future__ import annotations

import pytest

from db import queries
from db.models import JobStatus
from tests.db.seed import World, add_audit, add_logs, days_ago


@pytest.fixture
def world(session) -> World:
    world = World.create(session)
    session.commit()
    return world


def _ids(jobs):
    return [job.id for job in jobs]


# 1. recent jobs ---------------------------------------------------------------------------


def test_recent_jobs_in_a_status_come_newest_first_and_are_limited(session, world):
    # given running jobs created at different times, and jobs in other statuses
    running = [
        world.job(session, status=JobStatus.running, created_at=days_ago(d)) for d in (3, 1, 2, 0.5)
    ]
    world.job(session, status=JobStatus.failed, created_at=days_ago(0.1))
    session.commit()

    # when the dashboard asks for the running ones, two at a time
    jobs = queries.recent_jobs(session, status=JobStatus.running, limit=2)

    # then it gets the two newest running jobs, newest first
    assert _ids(jobs) == [running[3].id, running[1].id]
    assert (
        queries.recent_jobs(session, status="running", limit=10)
        == queries.recent_jobs(session, status=JobStatus.running)[:10]
    )


def test_recent_jobs_of_one_user_in_one_status(session, world):
    mine = world.job(session, user=world.alice, status=JobStatus.failed)
    world.job(session, user=world.bob, status=JobStatus.failed)
    world.job(session, user=world.alice, status=JobStatus.success)
    session.commit()

    jobs = queries.recent_jobs(session, status=JobStatus.failed, user_id=world.alice.id)

    assert _ids(jobs) == [mine.id]


def test_recent_jobs_without_a_filter_are_the_newest_and_hide_archived_jobs(session, world):
    # given jobs, one of them archived (the ERD's soft delete)
    first = world.job(session, status=JobStatus.success)
    archived = world.job(session, status=JobStatus.archived)
    last = world.job(session, status=JobStatus.pending)
    session.commit()

    jobs = queries.recent_jobs(session)

    assert _ids(jobs) == [last.id, first.id]
    assert archived.id not in _ids(queries.recent_jobs(session, user_id=world.alice.id))
    # asking for archived jobs explicitly still finds them
    assert _ids(queries.recent_jobs(session, status=JobStatus.archived)) == [archived.id]


def test_jobs_come_back_with_playbook_server_and_user_loaded(session, session_factory, world):
    # given a job
    world.job(session, server=world.db, status=JobStatus.running)
    session.commit()

    # when it is read and that session is gone (as when a Slack view is built afterwards)
    with session_factory() as reader:
        [job] = queries.recent_jobs(reader, status=JobStatus.running)

    # then its playbook, server and user are there without another query
    assert (job.playbook.name, job.server.hostname, job.user.username) == (
        world.ping.name,
        world.db.hostname,
        world.alice.username,
    )


# 2. job with logs -------------------------------------------------------------------------


def test_job_with_logs_finds_the_job_by_pk_or_uuid_with_its_lines_in_order(session, world):
    # given a job whose log lines were written out of order, and another job's lines
    job = world.job(session, status=JobStatus.failed)
    other = world.job(session)
    add_logs(session, job, [3, 1, 2])
    add_logs(session, other, [1])
    session.commit()

    # when the job is looked up by primary key or by its uuid
    by_pk = queries.job_with_logs(session, job.id)
    by_uuid = queries.job_with_logs(session, job.job_id.upper())

    # then both give the job, its joined rows, and only its lines, by line number
    for found in (by_pk, by_uuid):
        assert found.job.id == job.id
        assert found.job.playbook.name == world.ping.name
        assert found.job.server.hostname == world.web.hostname
        assert found.job.user.username == world.alice.username
        assert [log.content for log in found.logs] == ["line 1", "line 2", "line 3"]


def test_job_with_logs_can_return_only_the_last_lines(session, world):
    job = world.job(session)
    add_logs(session, job, range(1, 101))
    session.commit()

    found = queries.job_with_logs(session, job.id, last_lines=3)

    assert [log.line_number for log in found.logs] == [98, 99, 100]


def test_job_with_logs_of_an_unknown_job_is_none(session, world):
    assert queries.job_with_logs(session, 999_999) is None
    assert queries.job_with_logs(session, "00000000-0000-0000-0000-000000000000") is None


def test_log_pages_walk_a_long_log_without_gaps_or_overlaps(session, world):
    # given a job with 250 lines
    job = world.job(session)
    add_logs(session, job, range(1, 251))
    session.commit()

    # when it is read page by page from the middle on
    pages, after = [], 100
    while page := queries.log_page(session, job.id, after_line=after, limit=60):
        pages.append([log.line_number for log in page])
        after = page[-1].line_number

    # then the pages follow each other exactly
    assert [len(p) for p in pages] == [60, 60, 30]
    assert sum(pages, []) == list(range(101, 251))
    assert [log.line_number for log in queries.latest_log_lines(session, job.id, 2)] == [249, 250]


# 3. user history --------------------------------------------------------------------------


def test_user_history_lists_one_users_jobs_in_the_asked_statuses_newest_first(session, world):
    # given alice's jobs in several statuses and one of bob's
    old_fail = world.job(session, status=JobStatus.failed, created_at=days_ago(9))
    world.job(session, status=JobStatus.success, created_at=days_ago(5))
    new_fail = world.job(session, status=JobStatus.failed, created_at=days_ago(1))
    cancelled = world.job(session, status=JobStatus.cancelled, created_at=days_ago(2))
    world.job(session, user=world.bob, status=JobStatus.failed)
    session.commit()

    # when alice's failed and cancelled jobs are asked for
    jobs = queries.user_history(session, world.alice.id, ["failed", JobStatus.cancelled])

    # then exactly those come, newest first
    assert _ids(jobs) == [new_fail.id, cancelled.id, old_fail.id]
    assert _ids(queries.user_history(session, world.alice.id, [JobStatus.failed], limit=1)) == [
        new_fail.id
    ]
    assert queries.user_history(session, world.alice.id, []) == []


def test_user_history_without_statuses_shows_all_but_archived_jobs(session, world):
    done = world.job(session, status=JobStatus.success, created_at=days_ago(2))
    world.job(session, status=JobStatus.archived, created_at=days_ago(1))
    session.commit()

    assert _ids(queries.user_history(session, world.alice.id)) == [done.id]


# 4. audit trail ---------------------------------------------------------------------------


def test_audit_trail_lists_one_resources_rows_newest_first(session, world):
    # given audit rows about two servers and about a job with the same id
    server_id = str(world.web.id)
    first = add_audit(
        session, resource_type="server", resource_id=server_id, action="server.add", at=days_ago(3)
    )
    second = add_audit(
        session,
        resource_type="server",
        resource_id=server_id,
        action="server.deactivate",
        user=world.bob,
        at=days_ago(1),
    )
    add_audit(session, resource_type="server", resource_id=str(world.db.id))
    add_audit(session, resource_type="job", resource_id=server_id)
    session.commit()

    # when the trail of that server is read
    trail = queries.audit_trail(session, "server", world.web.id)

    # then it holds exactly its rows, newest first
    assert [row.id for row in trail] == [second.id, first.id]
    assert [row.action for row in queries.audit_trail(session, "server", server_id, limit=1)] == [
        "server.deactivate"
    ]


# 5. statistics ----------------------------------------------------------------------------


def test_job_stats_count_the_last_seven_days_by_status(session, world):
    # given jobs of the last week and older ones
    for status, age in [
        ("success", 1),
        ("success", 6.9),
        ("failed", 2),
        ("running", 0),
        ("success", 8),
        ("failed", 30),
    ]:
        world.job(session, status=JobStatus(status), created_at=days_ago(age))
    session.commit()

    stats = queries.job_stats(session)

    # then only the last seven days count, and every status has a number
    assert stats == {
        **dict.fromkeys(JobStatus, 0),
        JobStatus.success: 2,
        JobStatus.failed: 1,
        JobStatus.running: 1,
    }
    assert list(stats) == list(JobStatus)
    assert queries.job_stats(session, days=31)[JobStatus.failed] == 2


def test_queries_refuse_a_limit_below_one(session, world):
    with pytest.raises(ValueError, match="limit must be at least 1"):
        queries.recent_jobs(session, limit=0)
    with pytest.raises(ValueError, match="days must be at least 1"):
        queries.job_stats(session, days=0)
