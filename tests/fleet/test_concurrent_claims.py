"""Many runs over overlapping servers claimed at once by several worker processes, on real
MariaDB: no deadlock escapes, never two running jobs on one server, every job runs once."""

from __future__ import annotations

import logging
import multiprocessing
import random
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, func, select

from core import execution
from db.models import Job, JobStatus, Playbook, Server, User
from db.session import make_engine, make_session_factory
from workers.execute import _claim_with_retries

pytestmark = pytest.mark.slow


def _worker(url: str, job_ids: list[str], results) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    factory = make_session_factory(engine)
    todo = list(job_ids)
    random.shuffle(todo)
    deadline = time.monotonic() + 60
    ran: list[str] = []
    overlaps = 0
    errors: list[str] = []
    while todo and time.monotonic() < deadline:
        job_id = todo.pop(0)
        with factory() as session:
            try:
                claim = _claim_with_retries(session, job_id)
            except Exception as exc:  # noqa: BLE001 — the test reports any error that escapes
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if claim.waiting:
                todo.append(job_id)
                continue
            if not claim.jobs:
                continue
            servers = [j.server_id for j in claim.jobs]
            # while this run runs: nobody else runs on its servers
            others = session.execute(
                select(func.count()).select_from(Job).where(
                    Job.server_id.in_(servers), Job.status == JobStatus.running,
                    Job.run_id != claim.jobs[0].run_id)).scalar_one()
            overlaps += others
            session.commit()
            ran.extend(j.job_id for j in claim.jobs)
            time.sleep(random.uniform(0, 0.02))
            for job in claim.jobs:
                execution.finish(session, job.job_id, JobStatus.success)
            session.commit()
    results.put((ran, overlaps, errors))
    engine.dispose()


def test_concurrent_claims_from_several_processes_never_deadlock_or_double_book(
        mariadb_url):
    # given 24 runs of 3 servers each, over 8 servers (every server in many runs)
    engine = make_engine(mariadb_url)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        user = User(username="alice", role="operator")
        book = Playbook(name="ping", file_path="ping.yml", file_hash="0" * 64)
        servers = [Server(hostname=f"fleet-{i:02d}", connection="local", host_vars={})
                   for i in range(8)]
        s.add_all([user, book, *servers])
        s.flush()
        firsts: list[str] = []
        for n in range(24):
            picked = sorted(random.Random(n).sample(servers, 3), key=lambda x: x.id)
            run_id = str(uuid.uuid4())
            jobs = [Job(playbook_id=book.id, server_id=srv.id, user_id=user.id,
                        run_id=run_id, extra_vars={}) for srv in picked]
            s.add_all(jobs)
            s.flush()
            firsts.append(jobs[0].job_id)

    # when four worker processes each get a message for every run, at once
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_worker, args=(mariadb_url, firsts, results))
                 for _ in range(4)]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=90) for _ in processes]
    for p in processes:
        p.join(10)

    # then no error escaped, no server ever ran two jobs, and every job ran exactly once
    ran = [job for r, _, _ in outcomes for job in r]
    assert [e for _, _, errs in outcomes for e in errs] == []
    assert sum(o for _, o, _ in outcomes) == 0
    with factory() as s:
        total = s.execute(select(func.count()).select_from(Job)).scalar_one()
        statuses = set(s.execute(select(Job.status)).scalars())
    assert len(ran) == len(set(ran)) == total == 72
    assert statuses == {JobStatus.success}
    engine.dispose()


def test_a_lock_wait_timeout_before_the_claim_commits_is_retried_not_dead_lettered(
        mariadb_url, caplog):
    # given a pending job whose server row another transaction holds locked
    engine = create_engine(mariadb_url,
                           connect_args={"init_command": "SET innodb_lock_wait_timeout = 1"})
    factory = make_session_factory(engine)
    with factory.begin() as s:
        user = User(username="alice", role="operator")
        book = Playbook(name="ping", file_path="ping.yml", file_hash="0" * 64)
        server = Server(hostname="fleet-01", connection="local", host_vars={})
        s.add_all([user, book, server])
        s.flush()
        job = Job(playbook_id=book.id, server_id=server.id, user_id=user.id, extra_vars={})
        s.add(job)
        s.flush()
        job_id, server_id = job.job_id, server.id
    holder = engine.connect()
    holder_tx = holder.begin()
    holder.execute(select(Server.id).where(Server.id == server_id).with_for_update())

    # when the claim runs with a 1 s lock wait and the lock goes away after about 1.5 s
    def release() -> None:
        time.sleep(1.5)
        holder_tx.rollback()
        holder.close()

    threading.Thread(target=release, daemon=True).start()
    with factory() as session, caplog.at_level(logging.INFO, logger="workers.execute"):
        claim = _claim_with_retries(session, job_id)

    # then the claim was retried after the lock wait timeout and won
    assert [j.job_id for j in claim.jobs] == [job_id]
    assert "transient database error" in caplog.text and "1205" in caplog.text
    engine.dispose()


@pytest.mark.parametrize("code, transient", [(1213, True), (1205, True), (1305, True),
                                             (2013, True), (1062, False), (1146, False)])
def test_which_database_errors_a_claim_tries_again(code, transient):
    # 1305: InnoDB rolled the transaction back on a deadlock inside the claim's savepoint,
    # so ROLLBACK TO SAVEPOINT fails — the claim is tried again, like the deadlock itself
    from sqlalchemy.exc import OperationalError

    from workers.execute import _transient

    error = OperationalError("ROLLBACK TO SAVEPOINT sa_savepoint_1", {},
                             Exception(code, "server says no"))
    assert _transient(error) is transient
