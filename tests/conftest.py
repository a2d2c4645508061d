"""Suite-wide fixtures: real databases (SQLite and MariaDB), real Redis, migrated schemas.

`db_url` is parametrized over both engines: a test that takes it (or `session_factory`,
`session`) runs once on SQLite and once on MariaDB. `sqlite_url` / `mariadb_url` pin one.
MariaDB, Redis and SSH test hosts (`ssh_hosts(n)`: real sshd processes on 127.0.0.x) are
started by the suite itself on loopback; where their binaries are missing the tests that
need them are skipped — unless PLAYBOT_REQUIRE_SERVERS=1 (as
`scripts/test` and CI set), which turns that into a failure.

Every test database is built by the migrations: once per session into a template (a SQLite
file, a MariaDB database), which each test then gets a copy of (the SQLite file copied, the
MariaDB schema replayed from the template's SHOW CREATE statements). The migrations
themselves are tested on empty databases in tests/db/test_migrations.py.
PLAYBOT_TEST_MIGRATE_EACH=1 migrates every test's database from scratch instead.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from migrations import alembic_config
from tests.support.servers import MariaDBServer, RedisServer
from tests.support.ssh_hosts import SshFleet, SshHost

REQUIRE_SERVERS = os.environ.get("PLAYBOT_REQUIRE_SERVERS") == "1"
MIGRATE_EACH = os.environ.get("PLAYBOT_TEST_MIGRATE_EACH") == "1"
_db_names = itertools.count(1)


def _unavailable(what: str) -> None:
    if REQUIRE_SERVERS:
        pytest.fail(f"{what} is not installed but PLAYBOT_REQUIRE_SERVERS=1")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    if not MariaDBServer.available():
        _unavailable("MariaDB (mariadbd)")
    server = MariaDBServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stock_mariadb_server() -> Iterator[MariaDBServer]:
    """A second MariaDB with the stock defaults (latin1, latin1_swedish_ci), as many installed
    servers still are: the schema must not depend on the server's defaults."""
    if not MariaDBServer.available():
        _unavailable("MariaDB (mariadbd)")
    server = MariaDBServer(charset="latin1", collation="latin1_swedish_ci").start()
    yield server
    server.stop()


@pytest.fixture
def private_mariadb() -> Iterator[MariaDBServer]:
    """A MariaDB of the test's own, for tests that stop and restart it (`halt()`, `start()`);
    the suite's shared server is never restarted."""
    if not MariaDBServer.available():
        _unavailable("MariaDB (mariadbd)")
    server = MariaDBServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The suite's shared Redis. Tests that stop or restart Redis use `private_redis`."""
    if not RedisServer.available():
        _unavailable("Redis (redis-server)")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, free to be stopped and restarted."""
    if not RedisServer.available():
        _unavailable("Redis (redis-server)")
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def ssh_fleet() -> Iterator[SshFleet]:
    """The suite's real SSH test hosts (tests/support/ssh_hosts.py), started on first use.
    Tests take hosts from it through `ssh_hosts`, never directly, so they never share one."""
    if not SshFleet.available():
        _unavailable(f"SSH test hosts ({SshFleet.missing()})")
    fleet = SshFleet(4).start()
    yield fleet
    fleet.stop()


@pytest.fixture
def ssh_hosts(ssh_fleet: SshFleet):  # type: ignore[no-untyped-def]
    """`ssh_hosts(n)` → n SSH hosts of this test's own (the fleet grows when needed).

    A test may stop, restart or re-key its hosts and write into their homes: at its end
    each host is reset (original host key, sshd running, empty home) and handed back.
    """
    leased: list[SshHost] = []

    def lease(n: int = 1) -> list[SshHost]:
        free = [h for h in ssh_fleet.hosts if h not in _leased_hosts][:n]
        if len(free) < n:
            free += ssh_fleet.add(n - len(free))
        _leased_hosts.update(free)
        leased.extend(free)
        return free

    yield lease
    for host in leased:
        try:
            host.reset()
        finally:
            _leased_hosts.discard(host)


_leased_hosts: set[SshHost] = set()


def migrate(url: str) -> None:
    """Upgrade the database at `url` to head with the migrations."""
    command.upgrade(alembic_config(url), "head")


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "playbot.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _mariadb_template(mariadb_server: MariaDBServer) -> str:
    name = "playbot_template"
    migrate(mariadb_server.create_database(name))
    return name


@pytest.fixture
def sqlite_url(request, tmp_path) -> str:
    """A migrated SQLite database file of this test's own."""
    path = tmp_path / "playbot.db"
    url = f"sqlite:///{path}"
    if MIGRATE_EACH:
        migrate(url)
        return url
    template = request.getfixturevalue("_sqlite_template")
    with sqlite3.connect(template) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    return url


@pytest.fixture
def mariadb_url(request, mariadb_server: MariaDBServer) -> str:
    """A migrated MariaDB database of this test's own (superuser URL)."""
    name = f"playbot_t{next(_db_names)}"
    if MIGRATE_EACH:
        url = mariadb_server.create_database(name)
        migrate(url)
        return url
    template = request.getfixturevalue("_mariadb_template")
    return mariadb_server.create_database(name, schema_of=template)


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request) -> str:
    """A freshly migrated database, once per engine."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for one test; the test commits what it wants visible to other sessions."""
    with session_factory() as s:
        yield s


# Which tests ran on the real servers: marked at collection, counted, and summed up at the
# end ("MariaDB tests: 212 passed"), so a run that silently skipped them cannot pass as one
# that ran them. PLAYBOT_TEST_SUMMARY_FILE=path also writes the counts as JSON for scripts.

_SERVER_MARKS = {"mariadb": "MariaDB", "redis": "Redis", "ssh": "SSH"}
_server_tests: dict[str, set[str]] = {mark: set() for mark in _SERVER_MARKS}
_outcomes: dict[str, dict[str, str]] = {mark: {} for mark in _SERVER_MARKS}


def _uses(item: pytest.Item, mark: str) -> bool:
    if item.get_closest_marker(mark):
        return True
    names = set(getattr(item, "fixturenames", ()))
    if mark == "redis":
        return bool(names & {"redis_server", "private_redis"})
    if mark == "ssh":
        return bool(names & {"ssh_fleet", "ssh_hosts"})
    params = getattr(getattr(item, "callspec", None), "params", {})
    mariadb = {"mariadb_server", "stock_mariadb_server", "private_mariadb"}
    return bool(names & mariadb) or "mariadb" in params.values()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in _SERVER_MARKS:
            if _uses(item, mark):
                item.add_marker(mark)
                _server_tests[mark].add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under pytest-xdist this runs in the controller, which collected nothing itself: the
    # marks added at collection (in the worker) come with the report's keywords.
    for mark in _SERVER_MARKS:
        if report.nodeid not in _server_tests[mark] and mark not in report.keywords:
            continue
        if report.when != "call" and report.outcome == "passed":
            continue  # setup and teardown only count when they fail or skip
        seen = _outcomes[mark]
        if seen.get(report.nodeid) in (None, "passed"):
            seen[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    counts: dict[str, dict[str, int]] = {}
    for mark, label in _SERVER_MARKS.items():
        tally = {"passed": 0, "failed": 0, "skipped": 0}
        for outcome in _outcomes[mark].values():
            tally[outcome] = tally.get(outcome, 0) + 1
        counts[label] = tally
        collected = len(_server_tests[mark] | set(_outcomes[mark]))
        if collected:
            terminalreporter.write_line(
                f"{label} tests: {tally['passed']} passed, {tally['failed']} failed, "
                f"{tally['skipped']} skipped (of {collected} collected)"
            )
    summary_file = os.environ.get("PLAYBOT_TEST_SUMMARY_FILE")
    if summary_file:
        Path(summary_file).write_text(json.dumps(counts))
