"""core.execution on SQLite and MariaDB: the database decides what runs, once."""

from __future__ import annotations

import threading
from datetime import timedelta

from core import execution
from db.base import utcnow
from db.clock import now as db_time
from db.models import JobStatus, TicketKind, TicketPriority, TicketStatus


def test_a_pending_job_is_claimed_once_and_a_duplicate_claim_does_nothing(world):
    job_id = world.job()
    with world.factory() as s:
        first = execution.try_claim(s, job_id).job
        s.commit()
    with world.factory() as s:
        second = execution.try_claim(s, job_id).job
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
            results.append(execution.try_claim(s, job_id).job)
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
        execution.try_claim(s, running)
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
            if execution.try_claim(s, job_id).job is not None:
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
        assert execution.try_claim(s, a).job is not None
        assert execution.try_claim(s, b).job is not None
        s.commit()


def test_a_cancelled_or_awaiting_job_is_not_claimed(world):
    cancelled = world.job(status=JobStatus.cancelled)
    awaiting = world.job(status=JobStatus.awaiting_approval)
    with world.factory() as s:
        assert execution.try_claim(s, cancelled).status == JobStatus.cancelled
        assert execution.try_claim(s, awaiting).job is None
        assert execution.try_claim(s, "no-such-job").status is None


def test_finishing_a_failed_job_sets_completed_at_and_opens_a_ticket(world):
    job_id = world.job()
    with world.factory() as s:
        execution.try_claim(s, job_id)
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
        execution.try_claim(s, job_id, now=utcnow() - timedelta(minutes=5))
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
        execution.try_claim(s, stale, now=utcnow() - timedelta(minutes=5))
        execution.try_claim(s, fresh)
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
        execution.try_claim(s, job_id, now=utcnow() - timedelta(minutes=5))
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
        execution.try_claim(s, job_id, now=utcnow() - timedelta(minutes=5))
        execution.reap_stale(s, grace=60)
        s.commit()

    with world.factory() as s:
        pulse = execution.heartbeat(s, job_id)

    assert not pulse.running


def _db_now(world):
    with world.factory() as s:
        return db_time(s)


def test_requeue_sends_a_never_sent_job_but_not_one_waiting_behind_a_long_backlog(world):
    # given a job whose message never reached the queue, one sent 10 minutes ago that no
    # worker has taken yet (a backlog), and one sent just now
    now = _db_now(world)
    never_sent, backlog, fresh = world.job(), world.job(), world.job()
    world.set(never_sent, created_at=now - timedelta(seconds=30))
    world.set(backlog, created_at=now - timedelta(minutes=10), dramatiq_message_id="m1",
              enqueued_at=now - timedelta(minutes=10))
    world.set(fresh, created_at=now, dramatiq_message_id="m2", enqueued_at=now)

    with world.factory() as s:
        found = execution.requeue_candidates(s, min_age=15, lost_after=120)

    # then only the never-sent job is sent again: the backlog's message is still queued
    assert {j.job_id for j in found} == {never_sent}


def test_requeue_sends_a_message_taken_by_a_worker_that_then_neither_claimed_nor_resent(
        world):
    now = _db_now(world)
    dropped, in_hand = world.job(), world.job()
    world.set(dropped, dramatiq_message_id="m1", enqueued_at=now - timedelta(minutes=5),
              received_at=now - timedelta(minutes=4))
    world.set(in_hand, dramatiq_message_id="m2", enqueued_at=now - timedelta(minutes=5),
              received_at=now - timedelta(seconds=2))

    with world.factory() as s:
        found = execution.requeue_candidates(s, min_age=15, lost_after=120)

    assert {j.job_id for j in found} == {dropped}


def test_requeue_sends_what_was_queued_before_the_broker_lost_its_data(world):
    now = _db_now(world)
    queued_before, sent_after, taken_before = world.job(), world.job(), world.job()
    lost_at = now - timedelta(seconds=30)
    world.set(queued_before, dramatiq_message_id="m1", enqueued_at=now - timedelta(minutes=1))
    world.set(sent_after, dramatiq_message_id="m2", enqueued_at=now - timedelta(seconds=10))
    world.set(taken_before, dramatiq_message_id="m3", enqueued_at=now - timedelta(minutes=1),
              received_at=now - timedelta(seconds=50))

    with world.factory() as s:
        found = execution.requeue_candidates(s, min_age=15, lost_after=120,
                                             broker_lost_at=lost_at)

    assert {j.job_id for j in found} == {queued_before}


def test_only_one_of_two_clocks_wins_the_requeue_of_a_job_and_its_first_message_id_stays(
        world):
    now = _db_now(world)
    job_id = world.job()
    world.set(job_id, dramatiq_message_id="launch-msg", enqueued_at=now - timedelta(minutes=5),
              received_at=now - timedelta(minutes=4))
    with world.factory() as a, world.factory() as b:
        [seen_a] = execution.requeue_candidates(a, min_age=15, lost_after=120)
        [seen_b] = execution.requeue_candidates(b, min_age=15, lost_after=120)
        a.commit()
        b.commit()
        won_a = execution.claim_requeue(a, seen_a)
        execution.record_requeued(a, seen_a.run_id, "requeue-msg")
        a.commit()
        won_b = execution.claim_requeue(b, seen_b)
        b.commit()

    assert (won_a, won_b) == (True, False)
    job = world.get(job_id)
    assert job.dramatiq_message_id == "launch-msg"
    assert job.enqueued_at > job.received_at  # a fresh message: not requeued again
    with world.factory() as s:
        assert execution.requeue_candidates(s, min_age=15, lost_after=120) == []
