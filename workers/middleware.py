"""Dramatiq middleware for the cross-cutting parts of every message.

- `DatabaseMiddleware`: one SQLAlchemy engine per process (disposed after a fork, so a
  forked worker never shares its parent's connections) and one Session per message,
  closed (rolled back if left open) when the message is done.
- `LogContextMiddleware`: the actor, message id and job id of the message being processed,
  added to every log record by `LogContextFilter` (`%(playbot_context)s`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from typing import Any

from dramatiq.middleware import Middleware
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory

_lock = threading.Lock()
_engines: dict[str, tuple[int, Engine, sessionmaker[Session]]] = {}
_message_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "playbot_message_session", default=None)
_log_context: contextvars.ContextVar[str] = contextvars.ContextVar(
    "playbot_log_context", default="-")


def engine_for(database_url: str) -> Engine:
    """This process's engine for `database_url` (created on first use, again after a fork)."""
    return _entry(database_url)[1]


def session_factory(database_url: str) -> sessionmaker[Session]:
    """This process's session factory for `database_url`."""
    return _entry(database_url)[2]


def _entry(database_url: str) -> tuple[int, Engine, sessionmaker[Session]]:
    pid = os.getpid()
    with _lock:
        entry = _engines.get(database_url)
        if entry is not None and entry[0] == pid:
            return entry
        if entry is not None:  # inherited from the parent: never touch its connections
            entry[1].dispose(close=False)
        engine = make_engine(database_url)
        entry = (pid, engine, make_session_factory(engine))
        _engines[database_url] = entry
        return entry


def dispose_engines() -> None:
    """Close every pooled connection of this process (shutdown, tests)."""
    with _lock:
        entries = list(_engines.values())
        _engines.clear()
    for pid, engine, _factory in entries:
        engine.dispose(close=pid == os.getpid())


def _dispose_inherited() -> None:
    """Forget engines created by a parent process, without closing the parent's connections."""
    pid = os.getpid()
    with _lock:
        inherited = [key for key, entry in _engines.items() if entry[0] != pid]
        entries = [_engines.pop(key) for key in inherited]
    for _pid, engine, _factory in entries:
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_inherited)


def message_session() -> Session | None:
    """The Session of the message this thread is processing (None outside a message)."""
    return _message_session.get()


class DatabaseMiddleware(Middleware):
    """A Session per message, from the engine of this process.

    `database_url` is read when a message starts (a callable, so tests and the console
    can point the workers at another database without rebuilding the broker).
    """

    def __init__(self, database_url: Any) -> None:
        self._database_url = database_url

    def after_process_boot(self, broker: Any) -> None:
        _dispose_inherited()

    def before_process_message(self, broker: Any, message: Any) -> None:
        url = self._database_url() if callable(self._database_url) else self._database_url
        _message_session.set(session_factory(url)())

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        session = _message_session.get()
        _message_session.set(None)
        if session is not None:
            session.close()

    after_skip_message = after_process_message


class LogContextMiddleware(Middleware):
    """Puts "actor message-id job-id" into the log context of the processing thread."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        job = message.args[0] if message.args else "-"
        _log_context.set(f"{message.actor_name} msg={message.message_id[:8]} job={job}")

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        _log_context.set("-")

    after_skip_message = after_process_message


class LogContextFilter(logging.Filter):
    """Adds `playbot_context` (actor, message and job of the current message) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.playbot_context = _log_context.get()
        return True
