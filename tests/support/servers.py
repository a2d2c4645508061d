"""Start real MariaDB and Redis servers on loopback, in temporary directories, for the suite.

No systemd, no shared state: each server gets its own data dir, port and socket, so a
developer's own servers are left alone. Servers are found on PATH or in /usr/sbin.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start within {timeout}s")


class MariaDBServer:
    """A throwaway MariaDB server with a TCP superuser `playbot` (password `playbot`).

    `charset`/`collation`: the server's defaults (the suite's server: utf8mb4; a server
    with MariaDB's stock defaults: `latin1`, `latin1_swedish_ci`); new databases get them.
    `halt()` and `start()` again stop and restart the same server (data, port kept).
    """

    USER = "playbot"
    PASSWORD = "playbot"

    def __init__(self, *, charset: str = "utf8mb4",
                 collation: str = "utf8mb4_unicode_ci") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="playbot-mariadb-"))
        self.port = free_port()
        self.charset = charset
        self.collation = collation
        self.socket = str(self.dir / "mysqld.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self._schemas: dict[str, list[str]] = {}

    @staticmethod
    def available() -> bool:
        return bool(find_binary("mariadbd") and find_binary("mariadb-install-db"))

    def start(self) -> MariaDBServer:
        datadir = self.dir / "data"
        if datadir.exists():  # a restart after halt()
            self._launch(datadir)
            return self
        tmpdir = self.dir / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        command = [find_binary("mariadb-install-db"), "--no-defaults", "--user=root",
                   f"--datadir={datadir}", "--auth-root-authentication-method=socket",
                   "--skip-test-db", f"--tmpdir={tmpdir}"]
        for attempt in (1, 2):  # once more on a loaded machine, from an empty data dir
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode == 0:
                break
            shutil.rmtree(datadir, ignore_errors=True)
            if attempt == 2:
                raise RuntimeError(f"mariadb-install-db failed ({done.returncode}): "
                                   f"{(done.stderr or done.stdout)[-2000:]}")
        self._launch(datadir)
        root = self.root_connection()
        with root.cursor() as cur:
            cur.execute(f"CREATE USER '{self.USER}'@'127.0.0.1' IDENTIFIED BY '{self.PASSWORD}'")
            cur.execute(
                f"GRANT ALL PRIVILEGES ON *.* TO '{self.USER}'@'127.0.0.1' WITH GRANT OPTION"
            )
            cur.execute("FLUSH PRIVILEGES")
        root.close()
        return self

    def _launch(self, datadir: Path) -> None:
        # Its own temporary directory: servers sharing /tmp name their temporary tables
        # alike (#sql-temptable-<server id>-…) and delete each other's.
        tmpdir = self.dir / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [find_binary("mariadbd"), "--no-defaults", "--user=root", f"--datadir={datadir}",
             f"--tmpdir={tmpdir}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=256M",
             "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin",
             f"--character-set-server={self.charset}", f"--collation-server={self.collation}",
             f"--log-error={self.dir / 'error.log'}", f"--pid-file={self.dir / 'mysqld.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 30)

    def halt(self) -> None:
        """Stop the server (a clean shutdown), keeping its data for `start()`."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def root_connection(self) -> pymysql.Connection:
        deadline = time.monotonic() + 30
        while True:
            try:
                return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str, *, schema_of: str | None = None) -> str:
        """Create a database; return its SQLAlchemy URL (as the superuser).

        Empty, or with `schema_of`: a copy of that database's schema (tables with their keys,
        indexes and checks, triggers, and the alembic revision) replayed from its own
        SHOW CREATE statements — what migrating a new database would build, in a fraction
        of the time.
        """
        conn = self.root_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET {self.charset} "
                            f"COLLATE {self.collation}")
                if schema_of is not None:
                    cur.execute(f"USE `{name}`")
                    cur.execute("SET FOREIGN_KEY_CHECKS = 0")
                    for statement in self._schema_statements(schema_of):
                        cur.execute(statement)
                    cur.execute("SET FOREIGN_KEY_CHECKS = 1")
                    cur.execute(
                        f"INSERT INTO `{name}`.alembic_version "
                        f"SELECT * FROM `{schema_of}`.alembic_version"
                    )
        finally:
            conn.close()
        return self.url(name)

    def _schema_statements(self, database: str) -> list[str]:
        cached = self._schemas.get(database)
        if cached is not None:
            return cached
        conn = self.root_connection()
        statements: list[str] = []
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_type = 'BASE TABLE'", (database,)
                )
                for (table,) in cur.fetchall():
                    cur.execute(f"SHOW CREATE TABLE `{database}`.`{table}`")
                    statements.append(cur.fetchone()[1])
                cur.execute(
                    "SELECT trigger_name FROM information_schema.triggers "
                    "WHERE trigger_schema = %s ORDER BY action_order", (database,)
                )
                for (trigger,) in cur.fetchall():
                    cur.execute(f"SHOW CREATE TRIGGER `{database}`.`{trigger}`")
                    statements.append(cur.fetchone()[2])
        finally:
            conn.close()
        self._schemas[database] = statements
        return statements

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        return (f"mysql+pymysql://{user or self.USER}:{password or self.PASSWORD}"
                f"@127.0.0.1:{self.port}/{database}?charset=utf8mb4")

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A throwaway Redis server without persistence (like Debian's default: no AOF)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="playbot-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return bool(find_binary("redis-server"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [find_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 10)
        return self

    def stop(self) -> None:
        """Stop the server; its queue contents are lost (no persistence)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
