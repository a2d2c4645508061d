"""What every CLI command shares: validated settings, a database session, a clean failure."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import NoReturn

import typer
from sqlalchemy.orm import Session

from bot.settings import Settings, SettingsError, load_settings
from db.session import make_engine, make_session_factory, transaction


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` on stderr and exit with `code` (2: the input was wrong)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@cache
def settings() -> Settings:
    try:
        loaded = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    logging.basicConfig(level=loaded.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Alembic narrates every migration step at INFO; `playbot db` prints its own summary.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    return loaded


@cache
def _factory():  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(settings().database_url))


@contextmanager
def session_scope() -> Iterator[Session]:
    """A transaction on the configured database: commits on success, rolls back on error."""
    with transaction(_factory()) as session:
        yield session
