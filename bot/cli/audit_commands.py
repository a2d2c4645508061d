"""`playbot audit`: check the audit trail's hash chain, export rows for a SIEM.

`verify` exits 0 when every row is chained to the one before it and unchanged, and prints the
head hash (keep it elsewhere: a later run that prints another chain for the same rows means
they were rewritten); it exits 1 naming the first row that breaks the chain. `export` writes
one JSON object per line (UTF-8), oldest first; bad dates are refused with exit code 2.
Neither writes anything.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.context import fail, session_scope
from core import audit

app = typer.Typer(no_args_is_help=True, help="The audit trail: verify its hash chain, export it.")

DATE_HELP = "UTC date (2026-12-01) or ISO date-time (2026-12-01T08:00:00, +00:00 offsets too)."


def parse_moment(text: str, option: str) -> datetime:
    """`text` as an aware UTC datetime; a bare date is its midnight. Exit 2 when unreadable."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option}: {text!r} is not a date; give e.g. 2026-12-01 or 2026-12-01T08:00:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@app.command("verify")
def verify() -> None:
    """Check every audit row's hash chain; exit 1 naming the first row that breaks it."""
    with session_scope() as session:
        report = audit.verify(session)
    if report.ok:
        typer.echo(f"audit chain intact: {report.rows} rows, head {report.last_hash}")
        return
    where = f"row {report.broken_id}" if report.broken_id is not None else "the end of the chain"
    typer.echo(f"audit chain BROKEN at {where}: {report.reason} "
               f"({report.rows} rows before it verified)", err=True)
    raise typer.Exit(1)


@app.command("export")
def export(
    since: Annotated[str, typer.Option("--since", help=f"First moment exported. {DATE_HELP}")],
    until: Annotated[str | None, typer.Option(
        "--until", help=f"Export rows before this (a bare date: through that day). {DATE_HELP}"
    )] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write audit rows as JSON lines for a SIEM (with their hashes)."""
    start = parse_moment(since, "--since")
    end = None
    if until is not None:
        end = parse_moment(until, "--until")
        if len(until.strip()) == 10:  # a bare date includes that whole day
            end += timedelta(days=1)
        if end <= start:
            fail("--until must be after --since")
    stream = output.open("w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        with session_scope() as session:
            for row in audit.export_rows(session, start, end):
                stream.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
    finally:
        if output:
            stream.close()
    if output:
        typer.echo(f"exported {count} audit rows to {output}", err=True)
