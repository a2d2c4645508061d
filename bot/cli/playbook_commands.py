"""`playbot playbooks`: register the playbooks of PLAYBOOK_DIR (with their sidecar
`NAME.playbot.yml`), list and show them.

`sync` is the only way a playbook becomes runnable, and the way a changed playbook is
accepted again after review. What it accepts is the whole playbook directory (roles, included
files, templates, plugins: see core/playbook_files), and it says which files changed since the
last sync. Every change is audited (user None, details `{"via": "cli", "os_user": ...}`); a
mistake in any file, a playbook failing `ansible-playbook --syntax-check` or prompting for an
undeclared variable refuses the whole sync, exit 2. So does a runtime or archive directory
of Playbot inside PLAYBOOK_DIR: the runs would change the tree they are checked against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli.changes import change, emit_new_and_updated, emit_rows, origin
from bot.cli.context import fail, settings
from core import playbook_registry

app = typer.Typer(no_args_is_help=True, help="Playbooks of PLAYBOOK_DIR that Playbot may run.")


@app.command("sync")
def sync(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
) -> None:
    """Register new playbooks, update changed ones, deactivate those whose file is gone."""
    directory = settings().playbook_dir
    _refuse_own_dirs_inside(Path(directory))
    with change(dry_run=dry_run) as session:
        report = playbook_registry.sync_playbooks(session, directory, origin={
            **origin(), "playbook_dir": str(directory)})
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"Playbooks in {directory}: {len(report.created)} new, {len(report.updated)} "
               f"updated, {len(report.unchanged)} unchanged, {len(report.deactivated)} "
               f"deactivated{' (dry run: nothing written)' if dry_run else ''}.")
    changes = report.tree_changes
    if changes:
        typer.echo(f"Changed in {directory} since the last sync ({changes.count} "
                   f"file{'s' if changes.count > 1 else ''}): {changes.describe(limit=20)}.")
    emit_new_and_updated(report.created, report.updated)
    for name in report.deactivated:
        typer.echo(f"  - {name} (file gone)")
    for filename, why in report.skipped.items():
        typer.echo(f"  skipped {filename}: {why}")


@app.command("list")
def list_(
    tag: Annotated[str | None, typer.Option("--tag", help="Only playbooks with this tag.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include deactivated playbooks.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered playbooks, optionally those with one tag."""
    with change() as session:
        found = playbook_registry.list_playbooks(session, tag=tag, active_only=not show_all)
        rows = [_row(book) for book in found]
    headers = ["name", "tags", "variables", "sha-256", "description"]
    if show_all:
        headers.insert(1, "active")
    emit_rows(rows, as_json=as_json,
              empty="No playbooks match." if tag else
                    "No playbooks registered. Put them in PLAYBOOK_DIR and run: playbot playbooks sync",
              headers=headers,
              cells=[[r["name"]] + (["yes" if r["active"] else "no"] if show_all else [])
                     + [",".join(r["tags"]) or "-", ",".join(r["variables"]) or "-",
                        r["file_hash"][:12], _short(r["description"] or "")]
                     for r in rows])


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="The playbook.")]) -> None:
    """Show one playbook: its file, hash, limits and declared variables."""
    with change() as session:
        book = playbook_registry.get_playbook(session, name, active_only=False)
        row = _row(book)
        variables: dict[str, Any] = dict(book.variables or {})
    typer.echo(f"{row['name']}{'' if row['active'] else ' (deactivated)'}")
    for label, value in (("description", row["description"]), ("file", row["file_path"]),
                         ("sha-256", row["file_hash"]), ("tags", ", ".join(row["tags"]) or "-"),
                         ("timeout", f"{row['timeout_seconds']} s" if row["timeout_seconds"]
                          else "default"),
                         ("free variables", "allowed" if row["allow_free_vars"] else "no")):
        typer.echo(f"  {label + ':':<16}{value or '-'}")
    if variables:
        typer.echo("  variables:")
        for var, spec in variables.items():
            typer.echo(f"    {var}: {_describe(spec)}")


def _refuse_own_dirs_inside(directory: Path) -> None:
    root = directory.expanduser().resolve()
    config = settings()
    for label, path in (("PLAYBOT_RUNTIME_DIR", getattr(config, "playbot_runtime_dir", None)),
                        ("PLAYBOT_ARCHIVE_DIR", getattr(config, "playbot_archive_dir", None))):
        if path is not None and Path(path).expanduser().resolve().is_relative_to(root):
            fail(f"{label} ({path}) is inside PLAYBOOK_DIR ({directory}): every run would "
                 "change the directory the playbooks are checked against. Move it out of the "
                 "playbook directory.")


def _row(book: Any) -> dict[str, Any]:
    return {"name": book.name, "active": book.is_active, "description": book.description,
            "file_path": book.file_path, "file_hash": book.file_hash,
            "tags": list(book.tags or []), "variables": sorted(book.variables or {}),
            "timeout_seconds": book.timeout_seconds, "allow_free_vars": book.allow_free_vars}


def _describe(spec: dict[str, Any]) -> str:
    parts = [str(spec.get("type", "string"))]
    if spec.get("choices"):
        parts.append("of " + "/".join(str(c) for c in spec["choices"]))
    if spec.get("min") is not None or spec.get("max") is not None:
        parts.append(f"{spec.get('min', '')}..{spec.get('max', '')}")
    if spec.get("pattern"):
        parts.append(f"pattern {spec['pattern']}")
    if spec.get("required"):
        parts.append("required")
    if spec.get("default") is not None:
        parts.append(f"default {_value(spec['default'])}")
    if spec.get("secret"):
        parts.append("secret (from PLAYBOT_VAR_*)")
    text = ", ".join(parts)
    return f"{text} — {spec['description']}" if spec.get("description") else text


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
