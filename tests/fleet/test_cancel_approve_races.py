"""Cancels and approvals racing the workers' claims, from several processes on real MariaDB:
the server detects no deadlock (error 1213) at all, none surfaces, and every job and
approval request ends consistent.

The claimers call `core.execution.try_claim` without the worker's retries, so a deadlock
would show here instead of being retried away.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from core import approvals, execution
from core import jobs as core_jobs
from core.errors import PlaybotError
from db.base import utcnow
from db.models import (
    Environment,
    Job,
    JobStatus,
    Playbook,
    Role,
    Server,
    Ticket,
    TicketKind,
    TicketStatus,
    User,
)
from db.retry import retrying
from db.session import make_engine, make_session_factory

pytestmark = pytest.mark.slow

RUNS = 30
SECONDS = 60


def _deadlock(exc: OperationalError) -> bool:
    args = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == 1213


def _server_deadlocks(engine) -> int:  # type: ignore[no-untyped-def]
    """How many deadlocks InnoDB has detected since the server started."""
    with engine.connect() as connection:
        return int(connection.execute(
            text("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")).one()[1])


def _latest_deadlock(engine) -> str:  # type: ignore[no-untyped-def]
    """InnoDB's report of the last deadlock it detected (both transactions and their locks)."""
    with engine.connect() as connection:
        status = connection.execute(text("SHOW ENGINE INNODB STATUS")).one()[2]
    start = status.find("LATEST DETECTED DEADLOCK")
    return status[start:status.find("TRANSACTIONS\n", start)] if start >= 0 else status


def _claimer(url: str, job_ids: list[str], seed: int, results) -> None:  # type: ignore[no-untyped-def]
    """Claim runs until every job has ended; a claimed run 'runs' a few ms, then ends
    (cancelled when a cancel was asked for it)."""
    rng = random.Random(seed)
    factory = make_session_factory(make_engine(url))
    errors: list[str] = []
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        with factory() as s:
            left = s.execute(select(Job.job_id).where(Job.job_id.in_(job_ids), Job.status.in_(
                [JobStatus.pending, JobStatus.awaiting_approval, JobStatus.running]))).scalars()
            todo = list(left)
        if not todo:
            break
        rng.shuffle(todo)
        for job_id in todo[:8]:
            with factory() as s:
                try:
                    claim = execution.try_claim(s, job_id)
                    s.commit()
                except OperationalError as exc:
                    s.rollback()
                    errors.append(f"claim: {exc.orig}")
                    continue
                ids = [j.job_id for j in claim.jobs]
            if not ids:
                continue
            time.sleep(rng.uniform(0, 0.03))
            with factory() as s:
                try:
                    stop = execution.cancel_requested(s, ids)
                    for job_id2 in ids:
                        execution.finish(s, job_id2,
                                         JobStatus.cancelled if stop else JobStatus.success)
                    s.commit()
                except OperationalError as exc:
                    s.rollback()
                    errors.append(f"finish: {exc.orig}")
    results.put(("claimer", errors))


def _decider(url: str, kind: str, refs: list[str], actor_name: str, seed: int,
             results) -> None:  # type: ignore[no-untyped-def]
    """Cancel jobs (`kind="cancel"`) or approve runs (`kind="approve"`) in a random order, each
    in its own transaction, a few at a time while the claimers work."""
    rng = random.Random(seed)
    factory = make_session_factory(make_engine(url))
    policy = core_jobs.LaunchPolicy(playbook_dir="/nonexistent")
    errors: list[str] = []
    todo = list(refs)
    rng.shuffle(todo)
    for ref in todo:
        # as the app runs a user's request (handlers.chat.perform): the whole transaction
        # again when the database ended it as a deadlock; what still fails is an error
        try:
            for attempt in retrying():
                with attempt, factory() as s:
                    actor = s.scalars(select(User).where(User.username == actor_name)).one()
                    try:
                        if kind == "cancel":
                            core_jobs.cancel(s, actor, ref)
                        else:
                            approvals.approve_run(s, actor, ref, policy=policy)
                        s.commit()
                    except PlaybotError:
                        s.rollback()  # already ended, already decided: a normal answer
                    except OperationalError:
                        s.rollback()
                        raise
        except OperationalError as exc:
            errors.append(f"{kind}: {exc.orig}")
        time.sleep(rng.uniform(0, 0.01))
    results.put((kind, errors))


def test_cancels_and_approvals_racing_claims_never_deadlock(mariadb_url):
    # given 30 runs of 2-3 servers over 6 (two of them production: those runs await an
    # approval, and an admin who did not request them approves them)
    engine = make_engine(mariadb_url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        alice = User(username="alice", role=Role.operator, slack_user_id="U_ALICE")
        boss = User(username="boss", role=Role.admin, slack_user_id="U_BOSS")
        book = Playbook(name="ping", file_path="ping.yml", file_hash="0" * 64)
        servers = [Server(hostname=f"race-{i:02d}", connection="local", host_vars={},
                          environment=Environment.production if i < 2
                          else Environment.development) for i in range(6)]
        s.add_all([alice, boss, book, *servers])
        s.flush()
        all_jobs: list[str] = []
        firsts: list[str] = []
        tickets: list[str] = []
        for n in range(RUNS):
            rng = random.Random(n)
            picked = sorted(rng.sample(servers, rng.choice([2, 3])), key=lambda x: x.id)
            run_id = str(uuid.uuid4())
            jobs = []
            for srv in picked:
                waits = srv.environment == Environment.production
                jobs.append(Job(playbook_id=book.id, server_id=srv.id, user_id=alice.id,
                                run_id=run_id, extra_vars={},
                                status=JobStatus.awaiting_approval if waits
                                else JobStatus.pending))
            s.add_all(jobs)
            s.flush()
            for job in jobs:
                if job.status == JobStatus.awaiting_approval:
                    ticket = Ticket(kind=TicketKind.approval, job_id=job.id,
                                    created_by=alice.id, title="Approve ping",
                                    status=TicketStatus.open,
                                    expires_at=utcnow() + timedelta(hours=1))
                    s.add(ticket)
                    s.flush()
                    tickets.append(ticket.ticket_id)
            all_jobs.extend(j.job_id for j in jobs)
            firsts.append(jobs[0].job_id)
    cancels = random.Random(99).sample(all_jobs, len(all_jobs) // 3)

    deadlocks_before = _server_deadlocks(engine)

    # when two claimer processes, a canceller (the admin) and an approver work at once
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_claimer, args=(mariadb_url, all_jobs, 1, results)),
        context.Process(target=_claimer, args=(mariadb_url, all_jobs, 2, results)),
        context.Process(target=_decider,
                        args=(mariadb_url, "cancel", cancels, "boss", 3, results)),
        context.Process(target=_decider,
                        args=(mariadb_url, "approve", tickets, "boss", 4, results)),
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=SECONDS + 60) for _ in processes]
    for p in processes:
        p.join(10)

    # then the server saw no deadlock at all (none needed a retry), and no database error
    # surfaced anywhere
    assert _server_deadlocks(engine) == deadlocks_before, _latest_deadlock(engine)
    assert [e for _, errs in outcomes for e in errs] == []
    # and every job ended: run (success) or cancelled, none left waiting or running
    with factory() as s:
        statuses = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        leftovers = s.execute(select(func.count()).select_from(Job).where(
            (Job.running_server_id.is_not(None)) | (Job.active_fingerprint.is_not(None))
        )).scalar_one()
        open_requests = s.execute(select(func.count()).select_from(Ticket).where(
            Ticket.kind == TicketKind.approval, Ticket.status == TicketStatus.open)
        ).scalar_one()
        # an approved request's job was released (it then ran or was cancelled); a closed
        # one's job was cancelled before the approval
        decided = s.execute(
            select(Ticket.status, Job.status).join(Job, Ticket.job_id == Job.id)
            .where(Ticket.kind == TicketKind.approval)).all()
    assert set(statuses) <= {JobStatus.success, JobStatus.cancelled}
    assert sum(statuses.values()) == len(all_jobs)
    assert statuses.get(JobStatus.cancelled, 0) >= 1
    assert leftovers == 0 and open_requests == 0
    for ticket_status, job_status in decided:
        if ticket_status == TicketStatus.closed:
            assert job_status == JobStatus.cancelled
        else:
            assert ticket_status == TicketStatus.resolved
            assert job_status in (JobStatus.success, JobStatus.cancelled)
    engine.dispose()
