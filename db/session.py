"""Engine and session factories: one engine per database URL, sessions that never expire on commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import NullPool


def make_engine(database_url: str, *, echo: bool = False) -> Engine:
    """Create an engine with the options each backend needs.

    MySQL/MariaDB: utf8mb4, pre-ping and recycle so idle connections dropped by the server
    are replaced. SQLite: foreign keys on, WAL so the web process and the worker thread can
    read while the other writes, and a busy timeout instead of instant "database is locked".
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=NullPool if url.database in (None, "", ":memory:") else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine

    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    url = url.set(query=query)
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_recycle=1800, pool_size=10,
                         max_overflow=20)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def savepoint(session: Session) -> Iterator[SessionTransaction]:
    """`session.begin_nested()` that stays inside the caller's transaction on SQLite too.

    pysqlite opens no transaction before a SAVEPOINT: when the savepoint is the first write
    of the caller's transaction it becomes the transaction itself, and releasing it commits
    its rows at once, even if the caller later rolls back. So on SQLite the real
    transaction is begun first.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        raw = connection.connection.dbapi_connection
        if not getattr(raw, "in_transaction", True):
            connection.exec_driver_sql("BEGIN")
    with session.begin_nested() as nested:
        yield nested
