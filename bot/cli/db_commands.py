"""`playbot db`: schema migrations (upgrade, downgrade, current) and the runtime user's grants.

Migrations run on `DATABASE_URL` as whoever that URL names: in production the migration
user, never the runtime user (see `playbot db grants` and docs/database.md).
"""

from __future__ import annotations

from typing import Annotated

import typer
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.cli.changes import first_line, os_user
from bot.cli.context import fail, settings
from core import audit
from db.grants import GrantInputError, runtime_grants_script
from db.session import make_engine, make_session_factory, transaction
from migrations import alembic_config

app = typer.Typer(no_args_is_help=True, help="Database schema: migrations and grants.")

# `playbot db downgrade -1` must reach the argument, not be read as an unknown option.
_RELATIVE_OK = {"ignore_unknown_options": True}


@app.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head, the schema this code needs)."""
    url = settings().database_url
    before = _current(url)
    _run(lambda: command.upgrade(alembic_config(url), revision))
    after = _current(url)
    if after == before:
        typer.echo(f"Database already at {_describe(after)}.")
        return
    _audit(url, "db.upgrade", before, after)
    typer.echo(f"Database upgraded: {_describe(before)} → {_describe(after)}.")


@app.command(context_settings=_RELATIVE_OK)
def downgrade(
    revision: Annotated[
        str | None,
        typer.Argument(
            help="Target revision: an id, -N (N steps down) or base (drops everything)."
        ),
    ] = None,
) -> None:
    """Revert migrations down to REVISION. There is no default: say where to stop."""
    if not revision:
        fail(
            "say which revision to go down to: `playbot db downgrade -1` (one step), "
            "`playbot db downgrade 0001`, or `playbot db downgrade base` "
            "(drops every Playbot table and all their data)"
        )
    if revision.startswith("-") and not revision[1:].isdigit():
        fail(f"unknown option or revision {revision!r}: use an id, -N or base")
    url = settings().database_url
    before = _current(url)
    if before is None:
        fail("the database has no Playbot schema: nothing to downgrade")
    _run(lambda: command.downgrade(alembic_config(url), revision))
    after = _current(url)
    _audit(url, "db.downgrade", before, after)
    typer.echo(f"Database downgraded: {_describe(before)} → {_describe(after)}.")


@app.command()
def current() -> None:
    """Show the schema revision the database is at, and whether that is the newest."""
    url = settings().database_url
    typer.echo(_describe(_current(url)))


@app.command()
def grants(
    user: Annotated[str, typer.Argument(help="The runtime database user (web, worker, clock).")],
    host: Annotated[str, typer.Option(help="Host part of the account ('%': any).")] = "%",
    database: Annotated[
        str | None, typer.Option(help="Database name (default: the one in DATABASE_URL).")
    ] = None,
) -> None:
    """Print the MySQL GRANT statements for a least-privilege runtime user.

    SELECT and INSERT only on audit_logs; no DDL, DROP or TRUNCATE anywhere. Pipe the
    output into the `mysql` client as an administrator.
    """
    if database is None:
        url = make_url(settings().database_url)
        if url.get_backend_name() != "mysql" and url.get_backend_name() != "mariadb":
            fail("DATABASE_URL is not a MySQL/MariaDB database: pass --database NAME")
        if not url.database:
            fail("DATABASE_URL names no database: pass --database NAME")
        database = url.database
    try:
        typer.echo(runtime_grants_script(user, database=database, host=host), nl=False)
    except GrantInputError as exc:
        fail(str(exc))


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _describe(revision: str | None) -> str:
    if revision is None:
        return "base (no Playbot schema)"
    return f"{revision} (head)" if revision == _head() else f"{revision} (head is {_head()})"


def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        fail(f"cannot read the database at DATABASE_URL: {first_line(exc)}", code=1)
    finally:
        engine.dispose()


def _run(step) -> None:  # type: ignore[no-untyped-def]
    try:
        step()
    except CommandError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"migration failed: {first_line(exc)}", code=1)


def _audit(url: str, action: str, before: str | None, after: str | None) -> None:
    """Record a schema change, when there is still a chained audit trail to record it in
    (a downgrade below revision 0005 leaves none: its audit_logs has no hash columns)."""
    engine = make_engine(url)
    try:
        if not inspect(engine).has_table("audit_chain_head"):
            return
        with transaction(make_session_factory(engine)) as session:
            audit.record(
                session,
                user=None,
                action=action,
                resource_type="database",
                resource_id=after or "base",
                details={"from": before or "base", "to": after or "base", "os_user": os_user()},
            )
    finally:
        engine.dispose()
