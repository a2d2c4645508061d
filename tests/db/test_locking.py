"""`db.locking.latest`: the committed row, locking only that row — never waiting for the
server row a worker's claim holds (on MariaDB), and a plain re-read on SQLite."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, select, update

from db.locking import latest
from db.models import Job, Playbook, Server, Ticket, TicketKind, User
from db.session import make_engine, make_session_factory


def _rows(factory) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with factory.begin() as s:
        user = User(username="alice", role="operator")
        book = Playbook(name="ping", file_path="ping.yml", file_hash="0" * 64)
        server = Server(hostname="web-01", connection="local", host_vars={})
        s.add_all([user, book, server])
        s.flush()
        job = Job(playbook_id=book.id, server_id=server.id, user_id=user.id, extra_vars={})
        s.add(job)
        s.flush()
        ticket = Ticket(kind=TicketKind.approval, job_id=job.id, created_by=user.id,
                        title="Approve ping")
        s.add(ticket)
        s.flush()
        return job.id, ticket.id, server.id


def test_latest_reads_what_another_transaction_committed_after_this_one_began(db_url):
    # given a transaction that has read a job
    factory = make_session_factory(make_engine(db_url))
    job_pk, _, _ = _rows(factory)
    with factory() as session:
        job = session.get(Job, job_pk)
        assert job is not None and job.error_message is None
        # when another transaction changes it and commits
        with factory.begin() as other:
            other.execute(update(Job).where(Job.id == job_pk).values(error_message="changed"))
        # then latest() sees the committed row, and the job's relations still load
        assert latest(session, job) is job
        assert job.error_message == "changed"
        assert (job.server.hostname, job.user.username) == ("web-01", "alice")


def test_latest_does_not_wait_for_the_server_row_a_claim_holds(mariadb_url):
    # given a worker's claim holding the job's server row FOR UPDATE
    engine = create_engine(mariadb_url,
                           connect_args={"init_command": "SET innodb_lock_wait_timeout = 2"})
    factory = make_session_factory(engine)
    job_pk, ticket_pk, server_pk = _rows(factory)
    claim = engine.connect()
    claim_tx = claim.begin()
    claim.execute(select(Server.id).where(Server.id == server_pk).with_for_update())
    try:
        with factory() as session:
            job = session.get(Job, job_pk)
            ticket = session.get(Ticket, ticket_pk)
            # when a cancel or an approval re-reads the job and its ticket with a lock
            started = time.monotonic()
            latest(session, job)
            latest(session, ticket)
            took = time.monotonic() - started
            # then neither waited for the server (a join would have share-locked it)
            assert took < 1.0
            assert ticket.job is job and job.server.hostname == "web-01"
            session.rollback()
    finally:
        claim_tx.rollback()
        claim.close()
        engine.dispose()


@pytest.mark.parametrize("exclusive", [False, True])
def test_latest_of_a_row_that_is_gone_raises(sqlite_url, exclusive):
    factory = make_session_factory(make_engine(sqlite_url))
    job_pk, ticket_pk, _ = _rows(factory)
    with factory() as session:
        ticket = session.get(Ticket, ticket_pk)
        with factory.begin() as other:
            other.execute(Ticket.__table__.delete().where(Ticket.id == ticket_pk))
        with pytest.raises(Exception, match="No row was found"):
            latest(session, ticket, exclusive=exclusive)
