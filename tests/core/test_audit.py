"""The audit trail: one row per decision, with the request's origin, and never a secret."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core import audit
from core.audit import REDACTED, RequestInfo, sanitize
from core.errors import NotAllowed
from db.models import AuditLog, Role, User

SLACK_TOKEN = "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
PRIVATE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
               "-----END OPENSSH PRIVATE KEY-----")


# sanitize ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["password", "db_password", "Passwd", "secret", "client_secret",
                                 "token", "slack-bot-token", "api_key", "apiKey",
                                 "private_key", "ssh_private_key", "credentials",
                                 "authorization", "auth", "aws_access_key", "passphrase"])
def test_values_under_secret_looking_keys_are_redacted(key):
    assert sanitize({key: "hunter2", "version": "1.2"}) == {key: REDACTED, "version": "1.2"}


def test_secret_keys_are_redacted_at_any_depth():
    details = {"vars": {"app": {"db_password": "x"}}, "items": [{"token": "y"}, "plain"]}
    assert sanitize(details) == {"vars": {"app": {"db_password": REDACTED}},
                                 "items": [{"token": REDACTED}, "plain"]}


def test_harmless_keys_that_merely_resemble_secret_ones_are_kept():
    details = {"author": "bob", "request_key": "cmd:T1", "playbook": "deploy", "keys": 3}
    assert sanitize(details) == details


@pytest.mark.parametrize("text", [
    f"token is {SLACK_TOKEN}",
    f"key:\n{PRIVATE_KEY}",
    "connect with password=hunter2 now",
    'payload {"api_key": "abc123def"}',
    "mysql+pymysql://playbot:s3cr3t@db/playbot",
    "Authorization: Bearer abcdefghijklmnop123",
    "random aZ3kLp9QwErT7yUiOp1AsDfGhJkL0zXcVbNm blob",
])
def test_secret_looking_values_are_redacted_inside_text(text):
    cleaned = sanitize({"message": text})["message"]
    assert REDACTED in cleaned
    for secret in (SLACK_TOKEN, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE", "hunter2", "abc123def",
                   "s3cr3t", "abcdefghijklmnop123", "aZ3kLp9QwErT7yUiOp1AsDfGhJkL0zXcVbNm"):
        assert secret not in cleaned


def test_uuids_and_file_hashes_are_not_mistaken_for_secrets():
    details = {"job": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
               "file_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    assert sanitize(details) == details


def test_huge_values_are_truncated():
    details = {"output": "x" * 50_000, "hosts": [f"h{i}" for i in range(500)]}
    cleaned = sanitize(details)
    assert len(cleaned["output"]) < 1100 and "truncated" in cleaned["output"]
    assert len(cleaned["hosts"]) <= 51 and "truncated" in cleaned["hosts"][-1]


def test_odd_values_become_json():
    from datetime import UTC, datetime

    cleaned = sanitize({"when": datetime(2024, 5, 1, tzinfo=UTC), "role": Role.admin,
                        "tags": {"web"}, "blob": b"\x00\x01"})
    assert json.loads(json.dumps(cleaned)) == {"when": "2024-05-01T00:00:00+00:00",
                                               "role": "admin", "tags": ["web"],
                                               "blob": "[2 bytes]"}


# record --------------------------------------------------------------------------------


def test_a_recorded_action_says_who_what_where_and_the_outcome(session):
    # given
    user = User(username="alice", role=Role.admin)
    session.add(user)
    session.flush()
    # when
    audit.record(session, user=user, action="job.cancel", resource_type="job",
                 resource_id="abc", details={"reason": "oops", "password": "p"},
                 request=RequestInfo(ip_address="10.0.0.7", user_agent="Slackbot 1.0"))
    session.commit()
    # then
    row = session.scalars(select(AuditLog)).one()
    assert (row.user_id, row.action, row.resource_type, row.resource_id) == (
        user.id, "job.cancel", "job", "abc")
    assert row.details == {"reason": "oops", "password": REDACTED, "outcome": "allowed"}
    assert (row.ip_address, row.user_agent) == ("10.0.0.7", "Slackbot 1.0")


def test_a_denial_is_recorded_with_its_reason(session):
    audit.denied(session, None, "job.launch", "playbook", "deploy",
                 NotAllowed("You need the operator role"), RequestInfo())
    session.commit()
    row = session.scalars(select(AuditLog)).one()
    assert row.user_id is None
    assert row.details == {"error": "You need the operator role", "outcome": "denied"}


def test_an_unknown_outcome_is_a_programming_error(session):
    with pytest.raises(ValueError):
        audit.record(session, user=None, action="x", resource_type="y", resource_id=None,
                     outcome="maybe")  # type: ignore[arg-type]


def test_overlong_fields_are_cut_to_the_columns(session):
    audit.record(session, user=None, action="a" * 100, resource_type="r" * 50,
                 resource_id="i" * 100, request=RequestInfo("1" * 60, "u" * 400))
    session.commit()
    row = session.scalars(select(AuditLog)).one()
    assert (len(row.action), len(row.resource_type), len(row.resource_id)) == (64, 32, 64)
    assert (len(row.ip_address), len(row.user_agent)) == (45, 255)


# the hash chain ------------------------------------------------------------------------


def _record(session, n: int, user: User | None = None, **request) -> list[AuditLog]:
    rows = [audit.record(session, user=user, action="job.launch", resource_type="job",
                         resource_id=str(i), details={"n": i, "text": "é\n<&>"},
                         request=RequestInfo(**request) if request else None)
            for i in range(n)]
    session.commit()
    return rows


def _tamper(db_url: str, sql: str, **params) -> None:
    """Run `sql` as the database superuser with the append-only triggers out of the way
    (dropped, then made again exactly as revision 0005 left them)."""
    from sqlalchemy import text

    from db.session import make_engine

    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                saved = connection.execute(text(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name = 'audit_logs'")).scalars().all()
            else:
                saved = [connection.execute(text(f"SHOW CREATE TRIGGER {name}")).one()[2]
                         for name in ("audit_logs_no_update", "audit_logs_no_delete")]
            connection.execute(text("DROP TRIGGER audit_logs_no_update"))
            connection.execute(text("DROP TRIGGER audit_logs_no_delete"))
            connection.execute(text(sql), params)
            for statement in saved:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_each_row_is_chained_to_the_one_before_it(session):
    # given three recorded actions
    rows = _record(session, 3)

    # then the first hangs on the genesis hash, each next one on its predecessor's hash,
    # each hash covers the row's content, the head names the last, and verify agrees
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.row_hash for r in rows[:-1]]
    assert all(r.row_hash == audit.chain_hash(r.prev_hash, audit.canonical(r)) for r in rows)
    assert len({r.row_hash for r in rows}) == 3
    report = audit.verify(session)
    assert report.ok and report.rows == 3 and report.last_hash == rows[-1].row_hash


def test_the_hash_read_back_from_the_database_is_the_one_written(session):
    # given a row with odd text, nested details and a microsecond timestamp, committed
    rows = _record(session, 1, team_id="T1", enterprise_id="E1", channel_id="C1",
                   request_id="req-1")
    session.expire_all()

    # when it is read back, its canonical content still gives its hash
    row = session.get(AuditLog, rows[0].id)
    assert audit.chain_hash(row.prev_hash, audit.canonical(row)) == row.row_hash
    assert (row.team_id, row.enterprise_id, row.channel_id, row.request_id) == (
        "T1", "E1", "C1", "req-1")


@pytest.mark.parametrize("sql,reason", [
    ("UPDATE audit_logs SET details = '{\"outcome\": \"denied\"}' WHERE id = :pk", "changed"),
    ("UPDATE audit_logs SET action = 'job.view' WHERE id = :pk", "changed"),
    ("UPDATE audit_logs SET team_id = 'T_OTHER' WHERE id = :pk", "changed"),
    ("UPDATE audit_logs SET user_id = NULL, actor_user_id = NULL WHERE id = :pk", "changed"),
], ids=["details", "action", "team", "actor"])
def test_verify_names_the_row_a_superuser_edited_with_the_triggers_dropped(db_url, session, sql,
                                                                          reason):
    # given a chained trail of five rows by alice
    alice = User(username="alice", role=Role.admin)
    session.add(alice)
    session.flush()
    rows = _record(session, 5, user=alice)

    # when the database superuser drops the append-only triggers and edits the third row
    _tamper(db_url, sql, pk=rows[2].id)

    # then verify fails and names that row
    session.expire_all()
    report = audit.verify(session)
    assert not report.ok and report.broken_id == rows[2].id and reason in report.reason
    assert report.rows == 2


def test_verify_names_the_row_after_one_that_was_deleted(db_url, session):
    rows = _record(session, 4)

    _tamper(db_url, "DELETE FROM audit_logs WHERE id = :pk", pk=rows[1].id)

    report = audit.verify(session)
    assert not report.ok and report.broken_id == rows[2].id
    assert "removed, inserted or re-hashed" in report.reason


def test_verify_catches_a_row_edited_and_rehashed_at_the_next_row(db_url, session):
    # given a trail; when a superuser rewrites row 2 AND recomputes its hash consistently
    rows = _record(session, 4)
    forged = AuditLog(**{c: getattr(rows[1], c) for c in (
        "user_id", "actor_user_id", "action", "resource_type", "resource_id", "ip_address",
        "user_agent", "timestamp", "team_id", "enterprise_id", "channel_id", "request_id")},
        details={"n": 1, "outcome": "denied"})
    new_hash = audit.chain_hash(rows[1].prev_hash, audit.canonical(forged))
    _tamper(db_url, "UPDATE audit_logs SET details = '{\"n\": 1, \"outcome\": \"denied\"}', "
            "row_hash = :h WHERE id = :pk", h=new_hash, pk=rows[1].id)

    # then the next row no longer hangs on it, and verify names that one
    report = audit.verify(session)
    assert not report.ok and report.broken_id == rows[2].id


def test_verify_catches_rows_removed_from_the_end(db_url, session):
    rows = _record(session, 3)

    _tamper(db_url, "DELETE FROM audit_logs WHERE id = :pk", pk=rows[2].id)

    report = audit.verify(session)
    assert not report.ok and report.broken_id is None
    assert f"ends at row {rows[1].id}" in report.reason


def test_deleting_a_user_keeps_the_chain_valid(session):
    # given rows by a user who is then deleted (the ERD's ON DELETE SET NULL)
    carol = User(username="carol", role=Role.operator)
    session.add(carol)
    session.flush()
    carol_id = carol.id
    rows = _record(session, 2, user=carol)
    session.delete(carol)
    session.commit()

    # then the rows lost user_id but kept the actor their hash covers, and verify passes
    session.expire_all()
    row = session.get(AuditLog, rows[0].id)
    assert (row.user_id, row.actor_user_id) == (None, carol_id)
    assert audit.verify(session).ok


def test_an_empty_trail_verifies(session):
    assert audit.verify(session) == audit.ChainReport(True, 0, audit.GENESIS_HASH)


@pytest.mark.parametrize("backend,threads,per_thread", [("sqlite", 4, 10),
                                                         ("mariadb", 12, 20)])
def test_concurrent_writers_never_fork_the_chain(request, backend, threads, per_thread):
    # given one database and many writers at once, each in its own connection, some
    # writing two rows per transaction, some as a user and some as the system
    import threading

    from db.session import make_engine, make_session_factory

    url = request.getfixturevalue(f"{backend}_url")
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as setup:
        users = [User(username=f"u{i}", role=Role.operator) for i in range(3)]
        setup.add_all(users)
        setup.commit()
        user_ids = [u.id for u in users]
    start, errors = threading.Barrier(threads), []

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with factory() as session, session.begin():
                    # a consistent read first, as real transactions do: it fixes the
                    # snapshot (MariaDB) before the chain head is locked
                    session.execute(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1))
                    user = user_ids[(n + i) % 3] if n % 2 else None
                    audit.record(session, user=user, action="job.launch",
                                 resource_type="job", resource_id=f"{n}-{i}",
                                 request=RequestInfo(request_id=f"r{n}-{i}"))
                    if i % 3 == 0:
                        audit.record(session, user=user, action="job.view",
                                     resource_type="job", resource_id=f"{n}-{i}",
                                     request=RequestInfo(request_id=f"r{n}-{i}"))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    # when they all write
    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)

    # then none failed, every row is there, and the chain is one unbroken line
    try:
        assert errors == []
        with factory() as session:
            report = audit.verify(session)
            expected = threads * (per_thread + len(range(0, per_thread, 3)))
            assert report.ok, report
            assert report.rows == audit.count_rows(session) == expected
    finally:
        engine.dispose()


def test_export_yields_the_rows_in_a_time_window_with_their_hashes(session):
    from datetime import timedelta

    rows = _record(session, 2, team_id="T1", request_id="req-9")
    since = rows[0].timestamp - timedelta(seconds=1)

    exported = list(audit.export_rows(session, since))
    assert [e["id"] for e in exported] == [r.id for r in rows]
    assert exported[0]["team_id"] == "T1" and exported[0]["request_id"] == "req-9"
    assert exported[0]["row_hash"] == rows[0].row_hash
    assert exported[0]["outcome"] == "allowed"
    json.dumps(exported)  # JSON-safe
    assert list(audit.export_rows(session, since, since)) == []


def _append_in_a_process(url: str, n: int, count: int, errors: str) -> None:
    import traceback
    from pathlib import Path

    from db.session import make_engine, make_session_factory

    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        for i in range(count):
            with factory() as session, session.begin():
                audit.record(session, user=None, action="job.launch", resource_type="job",
                             resource_id=f"p{n}-{i}")
    except Exception:
        Path(errors, f"writer-{n}.txt").write_text(traceback.format_exc())
        raise
    finally:
        engine.dispose()


def test_concurrent_writer_processes_never_fork_the_chain_on_mariadb(mariadb_url, tmp_path):
    # given eight processes appending at once to one MariaDB trail whose head row is missing
    # (the test database copies the schema, not the row migration 0005 adds): the first
    # appenders race to create it
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_in_a_process, args=(mariadb_url, n, 15, str(tmp_path)))
                 for n in range(8)]

    # when they all write
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)

    # then each finished cleanly and the 120 rows form one verified chain
    assert [p.read_text() for p in tmp_path.glob("writer-*.txt")] == []
    assert [process.exitcode for process in processes] == [0] * 8
    from db.session import make_engine, make_session_factory

    engine = make_engine(mariadb_url)
    with make_session_factory(engine)() as session:
        report = audit.verify(session)
        assert report.ok and report.rows == 120
    engine.dispose()
