"""Migrations: up to head, down to base and up again on SQLite and MariaDB, data kept on the
way, and the migrated database exactly what the models describe (no autogenerate diff)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from core.jobs import launch_fingerprint
from db.models import Base
from db.session import make_engine
from migrations import alembic_config

SEVEN_TABLES = {"users", "servers", "playbooks", "jobs", "job_logs", "tickets", "audit_logs"}
# 0004: server groups (seed v1.2)
# 0005: the audit chain's head
HEAD_TABLES = SEVEN_TABLES | {"server_groups", "server_group_children", "server_group_members",
                              "audit_chain_head"}
# 0006: leases and the queue epoch the clocks share
HEAD_TABLES |= {"clock_state"}
# 0008: personal API tokens
HEAD_TABLES |= {"api_tokens"}
# 0009: job templates (seed v1.2)
HEAD_TABLES |= {"job_templates", "schedules"}
# 0010: change freezes
HEAD_TABLES |= {"freeze_windows", "notification_settings", "notification_log"}


def schema_diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def tables_and_triggers(url: str) -> tuple[set[str], set[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            if connection.dialect.name == "sqlite":
                sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            else:
                sql = (
                    "SELECT trigger_name FROM information_schema.triggers "
                    "WHERE trigger_schema = DATABASE()"
                )
            triggers = {row[0] for row in connection.execute(text(sql))}
            return tables, triggers
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def revisions_base_to_head() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_migrated_database_matches_the_models_exactly(db_url):
    # given a database built by `upgrade head` (the db_url fixture)
    # when autogenerate compares it with the models
    # then there is nothing to generate: same tables, columns, types, keys and indexes
    assert schema_diff(db_url) == []


def test_upgrade_then_downgrade_and_upgrade_step_by_step_leaves_the_schema_intact(
    empty_db_url,
):
    # given an empty database
    config = alembic_config(empty_db_url)
    revisions = revisions_base_to_head()

    # when it is upgraded to head
    command.upgrade(config, "head")
    tables, triggers = tables_and_triggers(empty_db_url)
    # then it holds the seed's tables (and server groups), the append-only triggers, and
    # matches the models
    assert tables == HEAD_TABLES | {"alembic_version"}
    assert {"audit_logs_no_update", "audit_logs_no_delete"} <= triggers
    assert schema_diff(empty_db_url) == []

    # when it steps down one revision at a time, the revision follows each step
    for expected in [*reversed(revisions[:-1]), None]:
        command.downgrade(config, "-1")
        assert current_revision(empty_db_url) == expected
    # and at base nothing of Playbot is left but alembic's version table
    assert tables_and_triggers(empty_db_url) == ({"alembic_version"}, set())

    # when it goes back up one step at a time, it is exactly as before
    for expected in revisions:
        command.upgrade(config, "+1")
        assert current_revision(empty_db_url) == expected
    assert tables_and_triggers(empty_db_url)[0] == HEAD_TABLES | {"alembic_version"}
    assert schema_diff(empty_db_url) == []

    # and `downgrade base` in one go drops it all too
    command.downgrade(config, "base")
    assert tables_and_triggers(empty_db_url) == ({"alembic_version"}, set())


def _seed_v1(url: str) -> None:
    """Rows written by a v1.0.0 (revision 0001) install."""
    engine = make_engine(url)
    stamp = "2025-06-01 12:00:00"
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO users (id, username, email, role, is_active, created_at, updated_at) "
                f"VALUES (1, 'alice', 'alice@example.com', 'admin', 1, '{stamp}', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO servers (id, hostname, ssh_port, tags, environment, is_active, "
                f"created_at, updated_at) VALUES (1, 'web-01', 22, '[\"web\"]', 'production', 1, "
                f"'{stamp}', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO playbooks (id, name, file_path, file_hash, tags, variables, is_active, "
                f"created_at, updated_at) VALUES (1, 'ping', 'ping.yml', '{'a' * 64}', '[]', '{{}}', "
                f"1, '{stamp}', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO jobs (id, job_id, playbook_id, server_id, user_id, status, extra_vars, "
                "created_at) VALUES (1, '00000000-0000-0000-0000-000000000001', 1, 1, 1, 'failed', "
                f"'{{}}', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO job_logs (job_id, line_number, content, log_level, timestamp) "
                f"VALUES (1, 1, 'PLAY [all]', 'INFO', '{stamp}'), "
                f"(1, 2, 'fatal: boom', 'ERROR', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO tickets (id, ticket_id, job_id, created_by, title, status, priority, "
                "created_at, updated_at) VALUES (1, '00000000-0000-0000-0000-0000000000aa', 1, 1, "
                f"'ping failed', 'open', 'critical', '{stamp}', '{stamp}')"
            )
        )
        c.execute(
            text(
                "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details, "
                f"timestamp) VALUES (1, 'job.launch', 'job', '1', '{{}}', '{stamp}')"
            )
        )
    engine.dispose()


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return {
                t: c.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                for t in sorted(SEVEN_TABLES)
            }
    finally:
        engine.dispose()


def test_upgrading_a_populated_v1_database_keeps_every_row(empty_db_url):
    # given a v1.0.0 install (revision 0001) with a user, server, playbook, job, logs,
    # a ticket and an audit row
    config = alembic_config(empty_db_url)
    command.upgrade(config, "0001")
    _seed_v1(empty_db_url)
    before = _counts(empty_db_url)

    # when it is upgraded to head
    command.upgrade(config, "head")

    # then every row is still there, the new columns have their defaults, keys are intact
    assert _counts(empty_db_url) == before
    engine = make_engine(empty_db_url)
    with engine.connect() as c:
        assert c.execute(text("SELECT connection FROM servers")).scalar_one() == "ssh"
        assert c.execute(text("SELECT check_mode, cancel_requested FROM jobs")).one() == (0, 0)
        assert c.execute(text("SELECT kind FROM tickets")).scalar_one() == "incident"
        if c.dialect.name == "sqlite":
            assert c.execute(text("PRAGMA foreign_key_check")).fetchall() == []
            assert c.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    engine.dispose()

    # and going back to 0001 keeps the rows too
    command.downgrade(config, "0001")
    assert _counts(empty_db_url) == before


def _seed_v2_jobs(url: str) -> None:
    """Jobs of a revision 0002 install (after `_seed_v1`): some still in progress, two of
    them identical (the same vars written in another key order)."""
    engine = make_engine(url)
    stamp = "2025-06-02 12:00:00"
    rows = [
        # id, status, check_mode, cancel_requested, extra_vars
        (2, "pending", 0, 0, '{"b": 2, "a": 1}'),
        (3, "running", 0, 0, '{"a": 1, "b": 2}'),
        (4, "running", 0, 1, '{"a": 7}'),
        (5, "awaiting_approval", 1, 0, "{}"),
        (6, "success", 0, 0, '{"a": 8}'),
    ]
    with engine.begin() as c:
        for pk, status, check_mode, cancel, extra_vars in rows:
            c.execute(
                text(
                    "INSERT INTO jobs (id, job_id, playbook_id, server_id, user_id, status, "
                    "extra_vars, created_at, check_mode, cancel_requested) VALUES (:id, :uuid, "
                    "1, 1, 1, :status, :vars, :stamp, :check, :cancel)"
                ),
                {"id": pk, "uuid": f"00000000-0000-0000-0000-00000000000{pk}",
                 "status": status, "vars": extra_vars, "stamp": stamp, "check": check_mode,
                 "cancel": cancel},
            )
    engine.dispose()


def test_upgrading_to_0003_fingerprints_the_jobs_still_in_progress(empty_db_url):
    # given a 0002 install with finished jobs, jobs in progress, a cancel-requested one, and
    # two identical jobs in progress
    config = alembic_config(empty_db_url)
    command.upgrade(config, "0002")
    _seed_v1(empty_db_url)
    _seed_v2_jobs(empty_db_url)
    before = _counts(empty_db_url)

    # when it is upgraded to 0003
    command.upgrade(config, "0003")

    # then the jobs in progress carry the fingerprint a new launch computes (only the newer
    # of the identical pair), every other job none, and no row was lost
    engine = make_engine(empty_db_url)
    with engine.connect() as c:
        found = dict(c.execute(text("SELECT id, active_fingerprint FROM jobs")).all())
    engine.dispose()
    assert found == {
        1: None,
        2: None,
        3: launch_fingerprint(1, 1, 1, False, {"a": 1, "b": 2}),
        4: None,
        5: launch_fingerprint(1, 1, 1, True, {}),
        6: None,
    }
    assert _counts(empty_db_url) == before

    # and going back to 0002 keeps the rows too
    command.downgrade(config, "0002")
    assert _counts(empty_db_url) == before


def test_upgrading_to_0005_chains_the_existing_audit_rows_and_down_again_keeps_them(
        empty_db_url):
    # given an install at 0004 with audit rows written before the chain existed
    from core import audit
    from db.session import make_session_factory

    config = alembic_config(empty_db_url)
    command.upgrade(config, "0001")
    _seed_v1(empty_db_url)
    command.upgrade(config, "0004")
    engine = make_engine(empty_db_url)
    with engine.begin() as c:
        c.execute(text(
            "INSERT INTO audit_logs (user_id, action, resource_type, resource_id, details, "
            "ip_address, timestamp) VALUES (NULL, 'db.upgrade', 'database', '0004', "
            "'{\"from\": \"0003\", \"note\": \"\\u00e9 <&>\"}', '10.0.0.1', "
            "'2025-06-02 08:00:00.123456')"))
    engine.dispose()

    # when it is upgraded to head
    command.upgrade(config, "head")

    # then every old row is chained in id order (actor kept) and the chain verifies
    engine = make_engine(empty_db_url)
    with make_session_factory(engine)() as session:
        report = audit.verify(session)
        assert report.ok and report.rows == 2
        assert session.execute(text("SELECT actor_user_id FROM audit_logs ORDER BY id")
                               ).scalars().all() == [1, None]
        # and new rows continue the same chain
        audit.record(session, user=None, action="x.y", resource_type="z", resource_id="1")
        session.commit()
        assert audit.verify(session).rows == 3
    engine.dispose()

    # and going back to 0004 keeps the rows, still append-only
    command.downgrade(config, "0004")
    assert _counts(empty_db_url)["audit_logs"] == 3
    assert {"audit_logs_no_update", "audit_logs_no_delete"} <= tables_and_triggers(
        empty_db_url)[1]


def test_upgrading_to_0006_keeps_the_outcome_of_archived_jobs_and_the_database_requires_it(
        empty_db_url):
    # given a 0005 install with finished and archived jobs (archiving used to overwrite how
    # they ended) and a pending job whose message was sent
    from sqlalchemy.exc import DBAPIError

    config = alembic_config(empty_db_url)
    command.upgrade(config, "0001")
    _seed_v1(empty_db_url)  # job 1 failed, with its incident ticket
    command.upgrade(config, "0005")
    engine = make_engine(empty_db_url)
    stamp = "2025-06-02 12:00:00"
    rows = [
        # id, status, started_at, error_message, message id
        (2, "archived", stamp, None, None),            # ended well
        (3, "archived", stamp, "Task 'x' failed", None),  # failed: gets a ticket below
        (4, "archived", None, "Rejected by @bob", None),   # never ran
        (5, "archived", stamp, "cancelled on request", None),
        (6, "pending", None, None, "msg-6"),
    ]
    with engine.begin() as c:
        for pk, status, started, error, message in rows:
            c.execute(text(
                "INSERT INTO jobs (id, job_id, playbook_id, server_id, user_id, status, "
                "extra_vars, created_at, started_at, error_message, dramatiq_message_id, "
                "check_mode, cancel_requested, run_id) VALUES (:id, :uuid, 1, 1, 1, :status, "
                "'{}', :stamp, :started, :error, :message, 0, 0, :uuid)"),
                {"id": pk, "uuid": f"00000000-0000-0000-0000-00000000000{pk}",
                 "status": status, "stamp": stamp, "started": started, "error": error,
                 "message": message})
        c.execute(text(
            "INSERT INTO tickets (id, ticket_id, job_id, created_by, title, status, priority, "
            "created_at, updated_at, kind) VALUES (2, '00000000-0000-0000-0000-0000000000bb', "
            f"3, 1, 'x failed', 'open', 'high', '{stamp}', '{stamp}', 'incident')"))
    engine.dispose()

    # when it is upgraded to 0006
    command.upgrade(config, "0006")

    # then every finished job has its outcome, archived ones the one their traces show
    engine = make_engine(empty_db_url)
    try:
        with engine.connect() as c:
            found = dict(c.execute(text("SELECT id, outcome FROM jobs")).all())
            assert found == {1: "failed", 2: "success", 3: "failed", 4: "cancelled",
                             5: "cancelled", 6: None}
            assert c.execute(text("SELECT enqueued_at FROM jobs WHERE id = 6")).scalar_one()
            assert c.execute(text("SELECT COUNT(*) FROM clock_state")).scalar_one() == 2
        # and the database refuses an archived job without an outcome
        with engine.begin() as c, pytest.raises(DBAPIError):
            c.execute(text("UPDATE jobs SET outcome = NULL WHERE id = 2"))
    finally:
        engine.dispose()

    # and going back to 0005 keeps the rows
    command.downgrade(config, "0005")
    assert _counts(empty_db_url)["jobs"] == 6
