"""An identical launch while one is in progress is answered with that job, atomically.

`jobs.active_fingerprint` (unique) marks the job in progress of each identical launch (same
user, playbook, server, check mode and vars): every way a job stops being in progress
releases it, and launches racing each other still make exactly one job.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import approvals, execution, jobs
from core.errors import InvalidState
from db.base import utcnow
from db.models import AuditLog, Job, JobStatus, Ticket, User
from tests.core.conftest import stale_fingerprints


def launch(world, policy, *, who="oscar", playbook="ping", target="web-01", raw_vars=None,
           check_mode=False, session=None):
    return jobs.launch(session or world.session, world.user(who), playbook=playbook,
                       target=target, raw_vars=raw_vars or {}, check_mode=check_mode,
                       request_key=None, channel_id="C_OPS", policy=policy)


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def launch_rows(session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.action == "job.launch")
                                .order_by(AuditLog.id)))


# repeats while in progress ----------------------------------------------------------------


def test_an_identical_launch_while_the_first_is_pending_answers_with_it(world, policy):
    # given oscar's deploy is pending
    first = launch(world, policy, playbook="deploy", raw_vars={"version": "1.2"}).jobs[0]
    world.session.commit()
    # when he launches exactly the same again
    again = launch(world, policy, playbook="deploy", raw_vars={"version": "1.2"})
    world.session.commit()
    # then he is answered with the pending job, and the repeat is audited as one
    assert again.duplicate
    assert [j.id for j in again.jobs] == [j.id for j in again.already_running] == [first.id]
    assert count(world.session, Job) == 1
    created, repeat = launch_rows(world.session)
    assert "duplicate" not in created.details
    assert repeat.details["duplicate"] is True and repeat.details["in_progress"] is True
    assert (repeat.resource_id, repeat.details["status"]) == (first.job_id, "pending")


def test_the_same_vars_given_in_another_order_are_the_same_launch(world, policy):
    first = launch(world, policy, playbook="free",
                   raw_vars={"colour": "blue", "size": "10", "level": "2"}).jobs[0]
    world.session.commit()
    again = launch(world, policy, playbook="free",
                   raw_vars={"level": "2", "size": "10", "colour": "blue"})
    assert again.duplicate and [j.id for j in again.jobs] == [first.id]


def test_other_var_values_are_another_launch(world, policy):
    first = launch(world, policy, playbook="free", raw_vars={"colour": "blue"}).jobs[0]
    world.session.commit()
    again = launch(world, policy, playbook="free", raw_vars={"colour": "green"})
    assert not again.duplicate and again.jobs[0].id != first.id


def test_the_fingerprint_ignores_key_order_but_not_values_types_or_who():
    base = jobs.launch_fingerprint(1, 2, 3, False, {"a": 1, "b": {"x": [1, 2], "y": "z"}})
    assert len(base) == 64 and int(base, 16) >= 0
    assert jobs.launch_fingerprint(1, 2, 3, False, {"b": {"y": "z", "x": [1, 2]}, "a": 1}) == base
    others = [
        jobs.launch_fingerprint(1, 2, 3, False, {"a": "1", "b": {"x": [1, 2], "y": "z"}}),
        jobs.launch_fingerprint(1, 2, 3, False, {"a": 1, "b": {"x": [2, 1], "y": "z"}}),
        jobs.launch_fingerprint(1, 2, 3, True, {"a": 1, "b": {"x": [1, 2], "y": "z"}}),
        jobs.launch_fingerprint(9, 2, 3, False, {"a": 1, "b": {"x": [1, 2], "y": "z"}}),
        jobs.launch_fingerprint(1, 9, 3, False, {"a": 1, "b": {"x": [1, 2], "y": "z"}}),
        jobs.launch_fingerprint(1, 2, 9, False, {"a": 1, "b": {"x": [1, 2], "y": "z"}}),
    ]
    assert len({base, *others}) == 7


# every way a job stops being in progress releases its fingerprint ------------------------


def _cancel(world, policy, job):
    jobs.cancel(world.session, world.user("oscar"), job.job_id)


def _claim(world, job, *, now=None):
    assert execution.try_claim(world.session, job.job_id, now=now).job is not None
    world.session.commit()


def _cancel_running(world, policy, job):
    _claim(world, job)
    assert jobs.cancel(world.session, world.user("oscar"), job.job_id).cancel_requested


def _reject(world, policy, job):
    approvals.reject(world.session, world.user("alice"), jobs.approval_ticket(
        world.session, job).ticket_id, reason="not today")


def _expire(world, policy, job):
    ticket = jobs.approval_ticket(world.session, job)
    ticket.expires_at = utcnow() - timedelta(seconds=1)
    world.session.commit()
    assert approvals.expire_overdue(world.session, utcnow())


def _approve_too_late(world, policy, job):
    ticket = jobs.approval_ticket(world.session, job)
    ticket.expires_at = utcnow() - timedelta(seconds=1)
    world.session.commit()
    with pytest.raises(InvalidState, match="expired"):
        approvals.approve(world.session, world.user("alice"), ticket.ticket_id, policy=policy)


def _finisher(status):
    def finish(world, policy, job):
        _claim(world, job)
        assert execution.finish(world.session, job.job_id, status, error_message="x")
    return finish


def _reap(world, policy, job):
    _claim(world, job, now=utcnow() - timedelta(hours=1))
    assert execution.reap_stale(world.session, grace=timedelta(minutes=5))


def _assign_status(world, policy, job):
    job.status = JobStatus.success


ENDINGS = {
    "cancelled while pending": ("web-01", _cancel),
    "cancelled while awaiting approval": ("prod-01", _cancel),
    "cancel requested while running": ("web-01", _cancel_running),
    "rejected": ("prod-01", _reject),
    "expired by the clock": ("prod-01", _expire),
    "expired when approved too late": ("prod-01", _approve_too_late),
    "finished with success": ("web-01", _finisher(JobStatus.success)),
    "finished failed": ("web-01", _finisher(JobStatus.failed)),
    "finished cancelled": ("web-01", _finisher(JobStatus.cancelled)),
    "reaped": ("web-01", _reap),
    "status assigned on the model": ("web-01", _assign_status),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_once_the_job_is_no_longer_in_progress_an_identical_launch_makes_a_new_job(
    world, policy, ending
):
    # given oscar's job
    target, end = ENDINGS[ending]
    first = launch(world, policy, target=target).jobs[0]
    world.session.commit()
    # when it stops being in progress
    end(world, policy, first)
    world.session.commit()
    # then it holds no fingerprint, and launching the same again creates a new job
    world.session.refresh(first)
    assert first.active_fingerprint is None
    assert stale_fingerprints(world.session) == []
    again = launch(world, policy, target=target)
    world.session.commit()
    assert not again.duplicate and again.jobs[0].id != first.id
    assert again.jobs[0].active_fingerprint is not None


def _approve(world, policy, job):
    approvals.approve(world.session, world.user("alice"),
                      jobs.approval_ticket(world.session, job).ticket_id, policy=policy)


def _claim_it(world, policy, job):
    _claim(world, job)


def _defer_while_server_busy(world, policy, job):
    other = launch(world, policy, playbook="deploy", raw_vars={"version": "9"},
                   target=job.server.hostname).jobs[0]
    world.session.commit()
    _claim(world, other)
    assert execution.try_claim(world.session, job.job_id).waiting


MOVES = {
    "approved": ("prod-01", _approve, JobStatus.pending),
    "claimed": ("web-01", _claim_it, JobStatus.running),
    "left pending while its server is busy": ("web-01", _defer_while_server_busy,
                                              JobStatus.pending),
}


@pytest.mark.parametrize("move", list(MOVES))
def test_a_job_moving_between_active_statuses_still_answers_identical_launches(
    world, policy, move
):
    target, step, status = MOVES[move]
    first = launch(world, policy, target=target).jobs[0]
    world.session.commit()
    step(world, policy, first)
    world.session.commit()
    world.session.refresh(first)
    assert first.status == status and first.active_fingerprint is not None
    again = launch(world, policy, target=target)
    assert again.duplicate and [j.id for j in again.jobs] == [first.id]


# atomicity ------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["mariadb"], indirect=True)
def test_twenty_identical_launches_at_the_same_moment_make_one_job(world, policy,
                                                                    session_factory):
    # given oscar's production run requested from 20 clicks at once (each its own request
    # and transaction, each with a snapshot taken before any of them inserted)
    clicks = 20
    start = threading.Barrier(clicks)

    def click() -> tuple[bool, list[int], list[int]]:
        with session_factory() as session:
            oscar = session.scalars(select(User).where(User.username == "oscar")).one()
            start.wait(timeout=30)
            result = launch(world, policy, target="prod-01", session=session)
            answer = (result.duplicate, [j.id for j in result.jobs],
                      [t.id for t in result.approval_tickets])
            assert result.jobs[0].user_id == oscar.id
            session.commit()
            return answer

    # when they all launch
    with ThreadPoolExecutor(max_workers=clicks) as pool:
        answers = [f.result(timeout=60) for f in [pool.submit(click) for _ in range(clicks)]]

    # then there is one job with one approval request, and every click points at it
    with session_factory() as session:
        [job] = session.scalars(select(Job)).unique().all()
        [ticket] = session.scalars(select(Ticket)).unique().all()
        assert sorted(duplicate for duplicate, _, _ in answers) == [False] + [True] * 19
        assert {(tuple(ids), tuple(tickets)) for _, ids, tickets in answers} == {
            ((job.id,), (ticket.id,))}
        # and exactly one launch is audited as the creation, the rest as repeats
        rows = launch_rows(session)
        assert len(rows) == clicks
        assert [r.details.get("duplicate", False) for r in rows].count(False) == 1
        assert {r.resource_id for r in rows} == {job.job_id}


def test_a_launch_its_caller_rolls_back_leaves_nothing_behind(world, policy, session_factory):
    # given a transaction whose first write is the launch (on SQLite a savepoint opened
    # there would otherwise commit the job on its own)
    with session_factory() as session:
        oscar = session.get(User, world.user("oscar").id)
        result = jobs.launch(session, oscar, playbook="ping", target="prod-01", raw_vars={},
                             check_mode=False, request_key="cmd:R1", channel_id="C1",
                             policy=policy)
        assert result.approval_tickets
        # when the caller rolls back (say, Slack could not be answered)
        session.rollback()
    # then no job, ticket or audit row of it exists
    with session_factory() as session:
        assert (count(session, Job), count(session, Ticket), len(launch_rows(session))) == (
            0, 0, 0)
