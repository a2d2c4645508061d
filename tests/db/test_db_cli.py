"""`playbot db`: what an operator sees when migrating, checking and setting up grants."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from db.models import AuditLog
from db.session import make_engine, make_session_factory
from migrations import alembic_config
from tests.support.cli import run_cli

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
PREVIOUS = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(HEAD).down_revision


@pytest.fixture
def env(empty_sqlite_url):
    return {"DATABASE_URL": empty_sqlite_url}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_builds_the_schema_says_so_and_audits_it(env):
    # given an empty database; when the operator upgrades it
    result = run_cli("db", "upgrade", env=env)

    # then the schema is at head, the command says so, and the change is in the audit trail
    assert result.exit_code == 0, result.output
    assert f"base (no Playbot schema) → {HEAD} (head)" in result.stdout
    assert run_cli("db", "current", env=env).stdout.strip() == f"{HEAD} (head)"
    engine = make_engine(env["DATABASE_URL"])
    with make_session_factory(engine)() as session:
        row = session.scalars(select(AuditLog)).one()
        assert (row.action, row.resource_type, row.resource_id) == (
            "db.upgrade",
            "database",
            HEAD,
        )
        assert row.details["from"] == "base"
    engine.dispose()

    # and upgrading again changes nothing
    again = run_cli("db", "upgrade", env=env)
    assert again.exit_code == 0
    assert f"already at {HEAD} (head)" in again.stdout


def test_downgrade_without_a_target_is_refused_and_changes_nothing(env):
    # given a migrated database
    run_cli("db", "upgrade", env=env)

    # when the operator runs downgrade with no revision
    result = run_cli("db", "downgrade", env=env)

    # then it is refused with exit code 2 and advice, and every table is still there
    assert result.exit_code == 2
    assert "say which revision" in result.stderr
    assert "-1" in result.stderr and "base" in result.stderr
    assert "audit_logs" in _tables(env["DATABASE_URL"])


def test_downgrade_by_one_step_and_to_base(env):
    run_cli("db", "upgrade", env=env)

    one = run_cli("db", "downgrade", "-1", env=env)
    assert one.exit_code == 0, one.output
    assert f"{HEAD} (head) → {PREVIOUS} (head is {HEAD})" in one.stdout

    base = run_cli("db", "downgrade", "base", env=env)
    assert base.exit_code == 0, base.output
    assert _tables(env["DATABASE_URL"]) == {"alembic_version"}

    nothing = run_cli("db", "downgrade", "base", env=env)
    assert nothing.exit_code == 2
    assert "nothing to downgrade" in nothing.stderr


def test_unknown_revision_is_a_clear_error(env):
    result = run_cli("db", "upgrade", "nosuch", env=env)
    assert result.exit_code == 2
    assert "nosuch" in result.stderr


def test_grants_prints_least_privilege_statements_for_the_runtime_user():
    result = run_cli("db", "grants", "playbot_app", "--database", "playbot", "--host", "10.0.%")

    assert result.exit_code == 0, result.output
    grants = [line for line in result.stdout.splitlines() if not line.startswith("--")]
    assert "GRANT SELECT, INSERT ON `playbot`.`audit_logs` TO 'playbot_app'@'10.0.%';" in grants
    assert all(line.startswith("GRANT ") and line.endswith(";") for line in grants)
    assert not any(word in result.stdout for word in ("DROP,", "ALTER", "ALL PRIVILEGES"))


def test_grants_take_the_database_from_a_mysql_database_url():
    env = {"DATABASE_URL": "mysql+pymysql://migrator:pw@db.internal/playbot_prod"}
    result = run_cli("db", "grants", "app", env=env)
    assert result.exit_code == 0, result.output
    assert "ON `playbot_prod`.`jobs` TO 'app'@'%'" in result.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["app'; DROP TABLE users; --", "--database", "p"], "invalid user name"),
        (
            [
                "app",
                "--database",
                "p`; x",
            ],
            "invalid database name",
        ),
        (["app", "--database", "p", "--host", "evil' OR 1"], "invalid host"),
        (["app"], "not a MySQL/MariaDB database"),
    ],
    ids=["user", "database", "host", "sqlite-url"],
)
def test_grants_refuse_bad_input_with_exit_code_2(empty_sqlite_url, args, complaint):
    result = run_cli("db", "grants", *args, env={"DATABASE_URL": empty_sqlite_url})
    assert result.exit_code == 2
    assert complaint in result.stderr
    assert result.stdout == ""


def test_a_bad_database_url_is_named_in_the_error():
    result = run_cli("db", "current", env={"DATABASE_URL": "postgres://x"})
    assert result.exit_code == 2
    assert "DATABASE_URL" in result.stderr
