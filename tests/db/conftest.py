"""Fixtures of the database tests: empty (unmigrated) databases on both engines."""

from __future__ import annotations

import itertools

import pytest

from tests.support.servers import MariaDBServer

_names = itertools.count(1)


@pytest.fixture
def empty_sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def empty_mariadb_url(mariadb_server: MariaDBServer) -> str:
    return mariadb_server.create_database(f"playbot_empty{next(_names)}")


@pytest.fixture(params=["sqlite", "mariadb"])
def empty_db_url(request) -> str:
    """An empty database with no schema at all, once per engine."""
    return request.getfixturevalue(f"empty_{request.param}_url")
