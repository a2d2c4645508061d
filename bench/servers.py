"""Real MariaDB and Redis for the benchmarks, started exactly as the test suite starts them.

The server classes are the suite's own (`tests/support/servers.py`), imported rather than
copied so the benchmarks run on the same configuration the tests do. `BenchServers` starts
each server on first use and stops everything it started on `close()`.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from alembic import command

from migrations import alembic_config

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    from tests.support.servers import MariaDBServer, RedisServer
except ModuleNotFoundError:  # `python -m bench` run from outside the checkout
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.servers import MariaDBServer, RedisServer

__all__ = ["BenchServers", "MariaDBServer", "RedisServer", "REPO_ROOT", "migrate"]


class ServersUnavailable(RuntimeError):
    """MariaDB or Redis is not installed on this machine."""


def migrate(url: str) -> None:
    """Bring a database to the head revision, the way `playbot db upgrade` does."""
    command.upgrade(alembic_config(url), "head")


class BenchServers:
    """Lazily started MariaDB and Redis shared by every figure of one run.

    `mariadb`: a server already running (the test suite's) to use instead of starting one;
    it is left running on `close()`.
    """

    def __init__(self, mariadb: MariaDBServer | None = None) -> None:
        self._mariadb: MariaDBServer | None = mariadb
        self._own_mariadb = mariadb is None
        self._redis: list[RedisServer] = []
        self._names = itertools.count(1)
        self._template: str | None = None

    @property
    def mariadb(self) -> MariaDBServer:
        if self._mariadb is None:
            if not MariaDBServer.available():
                raise ServersUnavailable("MariaDB (mariadbd) is not installed")
            self._mariadb = MariaDBServer().start()
        return self._mariadb

    def database(self, label: str) -> str:
        """A fresh MariaDB database at the migrations' head; its URL.

        The first one is migrated; the others copy its schema (`schema_of`, as the test
        suite does), which builds the same tables in a fraction of the time.
        """
        server = self.mariadb
        if self._template is None:
            self._template = "bench_template"
            migrate(server.create_database(self._template))
        return server.create_database(f"bench_{label}_{next(self._names)}",
                                      schema_of=self._template)

    def redis(self) -> RedisServer:
        """A fresh Redis of its own (each figure gets an empty queue)."""
        if not RedisServer.available():
            raise ServersUnavailable("Redis (redis-server) is not installed")
        server = RedisServer().start()
        self._redis.append(server)
        return server

    def versions(self) -> dict[str, str]:
        """Server versions, for the machine description."""
        info: dict[str, str] = {}
        if self._mariadb is not None:
            conn = self._mariadb.root_connection()
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                info["mariadb"] = cur.fetchone()[0]
            conn.close()
        for server in self._redis:
            if server.process is not None:
                import redis

                client = redis.Redis.from_url(server.url)
                info["redis"] = client.info("server")["redis_version"]
                client.close()
                break
        return info

    def close(self) -> None:
        for server in self._redis:
            server.cleanup()
        self._redis.clear()
        if self._mariadb is not None and self._own_mariadb:
            self._mariadb.stop()
        self._mariadb = None

    def __enter__(self) -> BenchServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
