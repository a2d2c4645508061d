"""core.execution on SQLite and MariaDB: the database decides what runs, once."""

from __future__ import annotations

import threading
from datetime import timedelta

from core import execution
from db.base import utcnow
from db.models import JobStatus, TicketKind, TicketPriority, TicketStatus


def test_a_pending_job_is_claimed_once_and_a_duplicate_claim_does_nothing(world):
    job_id = world.job()
    with world.factory() as s:
        first = execution.claim(s, job_id)
        s.commit()
    with world.factory() as s:
        second = execution.claim(s, job_id)
        s.commit()

    assert first is not None and first.status == JobStatus.running
    assert second is None
    job = world.get(job_id)
    assert job.status == JobStatus.running and job.started_at and job.heartbeat_at


def test_concurrent_claims_of_one_job_have_exactly_one_winner(world):
    job_id = world.job()
    results: list[object] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        with world.factory() as s:
            barrier.wait()
            results.append(execution.claim(s, job_id))
            s.commit()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sum(r is not None for r in results) == 1


def test_a_job_whose_server_is_busy_stays_pending_and_names_the_running_job(world):
    running = world.job()
    waiting = world.job()
    with world.factory() as s:
        execution.claim(s, running)
        s.commit()

    with world.factory() as s:
        claim = execution.try_claim(s, waiting)
        s.commit()

    assert claim.waiting and claim.busy_with[0].job_id == running
    assert claim.busy_with[0].server.hostname == "local"
    job = world.get(waiting)
    assert job.status == JobStatus.pending and job.started_at is None


def test_concurrent_claims_on_one_server_start_only_one_job(world):
    jobs = [world.job() for _ in range(3)]
    won: list[str] = []
    barrier = threading.Barrier(3)

    def claim(job_id: str) -> None:
        with world.factory() as s:
            barrier.wait()
            if execution.claim(s, job_id) is not None:
                won.append(job_id)
            s.commit()

    threads = [threading.Thread(target=claim, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(won) == 1
    assert [world.get(j).status for j in jobs].count(JobStatus.running) == 1


def test_jobs_on_different_servers_run_side_by_side(world):
    world.server("web-01", connection="ssh")
    a, b = world.job(), world.job(server="web-01")
    with world.factory() as s:
        assert execution.claim(s, a) is not None
        assert execution.claim(s, b) is not None
        s.commit()


def test_a_cancelled_or_awaiting_job_is_not_claimed(world):
    cancelled = world.job(status=JobStatus.cancelled)
    awaiting = world.job(status=JobStatus.awaiting_approval)
    with world.factory() as s:
        assert execution.try_claim(s, cancelled).status == JobStatus.cancelled
        assert execution.claim(s, awaiting) is None
        assert execution.try_claim(s, "no-such-job").status is None


def test_finishing_a_failed_job_sets_completed_at_and_opens_a_ticket(world):
    job_id = world.job()
    with world.factory() as s:
        execution.claim(s, job_id)
        job = execution.finish(s, job_id, JobStatus.failed,
                               error_message="Task 'x' failed on local: boom",
                               recap={"hosts": {"local": {"ok": 1, "failed": 1}}, "tasks": 2})
        s.commit()

    assert job is not None and job.completed_at is not None
    stored = world.get(job_id)
    assert stored.status == JobStatus.failed
    assert stored.error_message == "Task 'x' failed on local: boom"
    assert stored.recap["hosts"]["local"]["failed"] == 1
    [ticket] = world.tickets(job_id)
    assert ticket.kind == TicketKind.incident and ticket.status == TicketStatus.open
    assert ticket.priority == TicketPriority.medium  # development server


def test_finish_does_nothing_to_a_job_the_reaper_already_ended(world):
    job_id = world.job()
    with world.factory() as s:
        execution.claim(s, job_id, now=utcnow() - timedelta(minutes=5))
        s.commit()
    with world.factory() as s:
        reaped = execution.reap_stale(s, now=utcnow(), grace=60)
        s.commit()

    with world.factory() as s:
        late = execution.finish(s, job_id, JobStatus.success)
        s.commit()

    assert [j.job_id for j in reaped] == [job_id]
    assert late is None
    assert world.get(job_id).status == JobStatus.failed


def test_the_reaper_fails_silent_jobs_with_a_clear_reason_and_a_ticket(world):
    stale, fresh = world.job(), world.job(server="web-02")
    world.server("web-02", connection="ssh")
    with world.factory() as s:
        execution.claim(s, stale, now=utcnow() - timedelta(minutes=5))
        execution.claim(s, fresh)
        s.commit()

    with world.factory() as s:
        reaped = execution.reap_stale(s, now=utcnow(), grace=timedelta(seconds=60))
        s.commit()

    assert [j.job_id for j in reaped] == [stale]
    job = world.get(stale)
    assert job.status == JobStatus.failed and job.completed_at
    assert job.error_message.startswith("worker lost: no heartbeat since ")
    assert "not run again" in job.error_message
    assert len(world.tickets(stale)) == 1
    assert world.get(fresh).status == JobStatus.running


def test_a_heartbeat_keeps_a_job_alive_and_reports_cancel_requests(world):
    job_id = world.job()
    with world.factory() as s:
        execution.claim(s, job_id, now=utcnow() - timedelta(minutes=5))
        s.commit()
    world.set(job_id, cancel_requested=True)

    with world.factory() as s:
        pulse = execution.heartbeat(s, job_id)
        s.commit()
    with world.factory() as s:
        reaped = execution.reap_stale(s, grace=60)
        s.commit()

    assert pulse.running and pulse.cancel_requested
    assert reaped == []


def test_a_heartbeat_for_a_reaped_job_says_it_is_no_longer_running(world):
    job_id = world.job()
    with world.factory() as s:
        execution.claim(s, job_id, now=utcnow() - timedelta(minutes=5))
        execution.reap_stale(s, grace=60)
        s.commit()

    with world.factory() as s:
        pulse = execution.heartbeat(s, job_id)

    assert not pulse.running


def test_requeue_lists_pending_jobs_whose_message_never_arrived_or_went_quiet(world):
    never_sent = world.job()
    sent_recently = world.job()
    sent_long_ago = world.job()
    now = utcnow()
    world.set(never_sent, created_at=now - timedelta(seconds=30))
    world.set(sent_recently, created_at=now - timedelta(seconds=30),
              dramatiq_message_id="m1", heartbeat_at=now - timedelta(seconds=5))
    world.set(sent_long_ago, created_at=now - timedelta(minutes=10),
              dramatiq_message_id="m2", heartbeat_at=now - timedelta(minutes=5))

    with world.factory() as s:
        found = execution.requeue_candidates(s, now=now, min_age=15, lost_after=120)

    assert {j.job_id for j in found} == {never_sent, sent_long_ago}


def test_a_requeued_job_is_not_listed_again_until_it_goes_quiet_again(world):
    job_id = world.job()
    world.set(job_id, created_at=utcnow() - timedelta(minutes=1))
    with world.factory() as s:
        [job] = execution.requeue_candidates(s, min_age=15, lost_after=120)
        execution.mark_requeued(s, job.job_id, "msg-1")
        s.commit()

    with world.factory() as s:
        again = execution.requeue_candidates(s, min_age=15, lost_after=120)

    assert again == []
    assert world.get(job_id).dramatiq_message_id == "msg-1"
