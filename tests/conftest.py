"""Suite-wide fixtures: real databases (SQLite and MariaDB), real Redis, migrated schemas.

`db_url` is parametrized over both engines: a test that takes it (or `session_factory`,
`session`) runs once on SQLite and once on MariaDB. `sqlite_url` / `mariadb_url` pin one.
MariaDB and Redis are started by the suite itself on loopback; where their binaries are
missing the tests that need them are skipped — unless PLAYBOT_REQUIRE_SERVERS=1 (as
`scripts/test` and CI set), which turns that into a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from migrations import alembic_config
from tests.support.servers import MariaDBServer, RedisServer

REQUIRE_SERVERS = os.environ.get("PLAYBOT_REQUIRE_SERVERS") == "1"
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


def migrate(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'playbot.db'}"
    migrate(url)
    return url


@pytest.fixture
def mariadb_url(request, mariadb_server: MariaDBServer) -> str:
    url = mariadb_server.create_database(f"playbot_t{next(_db_names)}")
    migrate(url)
    return url


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
