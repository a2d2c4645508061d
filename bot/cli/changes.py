"""Shared by `playbot users|servers|playbooks` (and `db`): one transaction per command whose
domain errors become a clear message and exit code 2 (nothing written), the audit origin of a
CLI change, dry runs, and what commands print: lists as tables or JSON, sync/import reports,
activation outcomes.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session

from bot.cli.context import fail, session_scope
from core.errors import PlaybotError


class _DryRun(Exception):
    """Raised inside the transaction of a dry run so that it rolls back."""


def origin() -> dict[str, str]:
    """The audit details every CLI change carries: how it was made and by which OS user."""
    return {"via": "cli", "os_user": os_user()}


def os_user() -> str:
    """The login name of whoever runs the command ("unknown" when the OS cannot say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@contextmanager
def change(*, dry_run: bool = False) -> Iterator[Session]:
    """A transaction for one command: commits on success; on a domain error rolls back and
    exits 2 with the error's message; on a database error rolls back and exits 1.
    With `dry_run` the work is done and then rolled back (the caller prints what would be)."""
    try:
        with session_scope() as session:
            yield session
            if dry_run:
                raise _DryRun
    except _DryRun:
        return
    except PlaybotError as exc:
        fail(str(exc))
    except IntegrityError as exc:
        fail(f"the change conflicts with existing data (someone changed it meanwhile?): "
             f"{first_line(exc.orig)}")
    except (OperationalError, ProgrammingError) as exc:
        text = first_line(exc.orig)
        if "no such table" in text or "doesn't exist" in text:
            fail("the database has no Playbot schema yet: run `playbot db upgrade` first", code=1)
        fail(f"database error: {text}", code=1)
    except SQLAlchemyError as exc:
        fail(f"database error: {first_line(exc)}", code=1)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as left-aligned columns under upper-case headers."""
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in row]
                                                   for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def emit_json(data: Any) -> None:
    """`data` as indented JSON with sorted keys (what `--json` prints)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def emit_rows(rows: Sequence[Mapping[str, Any]], *, as_json: bool, empty: str,
              headers: Sequence[str], cells: Sequence[Sequence[Any]]) -> None:
    """What a `list` command prints: `rows` as JSON with `--json`; else `empty` when there
    are none; else a table of `headers` over `cells` (one per row)."""
    if as_json:
        emit_json(rows)
    elif not rows:
        typer.echo(empty)
    else:
        typer.echo(table(headers, cells))


def emit_new_and_updated(created: Iterable[str], updated: Mapping[str, Iterable[str]]) -> None:
    """The lines under a sync or import summary: `  + NAME` for each new one and
    `  ~ NAME (what changed)` for each updated one."""
    for name in created:
        typer.echo(f"  + {name}")
    for name, what in updated.items():
        typer.echo(f"  ~ {name} ({', '.join(what)})")


def activation_line(name: str, *, was_active: bool, active: bool, detail: str = "") -> str:
    """What `activate` / `deactivate` print: the change made (`detail` follows the name), or
    that there was nothing to change."""
    if was_active == active:
        return f"{name} is already {'active' if active else 'deactivated'}; nothing changed."
    return f"{'Activated' if active else 'Deactivated'} {name}{detail}."


def first_line(exc: BaseException | None) -> str:
    """The first line of an error's message (its class name when it has none)."""
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__
