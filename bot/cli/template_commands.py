"""`playbot templates add|list|show|remove`: job templates from the operator's shell.

The same rules as in chat (`core.templates`): variables validated against the playbook's
declarations, overridable names declared by it, a target that names active servers, an
owner who is an operator or admin. Every change is audited (user None, details
`{"via": "cli", "os_user": ...}`); bad input exits 2 with nothing written.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.changes import change, emit_json, emit_rows, origin
from bot.cli.context import settings
from core import extra_vars, templates, users

app = typer.Typer(no_args_is_help=True, help="Job templates: saved launches run by name.")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Template name, e.g. deploy-web.")],
    playbook: Annotated[str, typer.Option("--playbook", help="Registered playbook.")],
    target: Annotated[str, typer.Option("--target", help="host, tag:T, env:E or group:G.")],
    owner: Annotated[str, typer.Option("--owner", help="Username of its owner (operator or admin).")],
    var: Annotated[list[str] | None, typer.Option(
        "--var", help="A variable NAME=VALUE (repeat for more), validated like chat input.")] = None,
    override: Annotated[list[str] | None, typer.Option(
        "--override", help="A variable a launch may set (repeat for more).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Run in check mode.")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Change the template of that name.")] = False,
) -> None:
    """Save a job template (or change one with --replace)."""
    with change() as session:
        template = templates.save_template(
            session, None, name=name, playbook=playbook, target=target,
            raw_vars=extra_vars.parse_assignments(var or []), check_mode=check,
            overridable=override or [], description=description,
            owner=users.get_user(session, owner), replace=replace,
            max_targets=settings().playbot_max_targets, origin=origin())
        typer.echo(f"{'Updated' if replace else 'Saved'} template {template.name}: "
                   f"{template.playbook.name} on {template.target}"
                   f"{' (check mode)' if template.check_mode else ''}, owner {owner}.")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List job templates."""
    with change() as session:
        found = templates.list_templates(session)
        rows = [{**templates.describe(t), "playbook_state": templates.playbook_state(t)}
                for t in found]
        emit_rows(rows, as_json=as_json, empty="No templates.",
                  headers=("name", "playbook", "target", "check", "owner", "overridable", "note"),
                  cells=[(r["name"], r["playbook"], r["target"], "yes" if r["check_mode"] else "",
                          r["owner"], ",".join(r["overridable"]), r["playbook_state"] or "")
                         for r in rows])


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="Template name.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show one job template."""
    with change() as session:
        template = templates.get_template(session, name)
        data = {**templates.describe(template),
                "playbook_state": templates.playbook_state(template)}
    if as_json:
        emit_json(data)
        return
    for key in ("name", "description", "playbook", "target", "variables", "check_mode",
                "overridable", "owner", "playbook_state"):
        typer.echo(f"{key}: {data[key] if data[key] not in (None, [], {}) else '-'}")


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Template name.")]) -> None:
    """Remove a job template."""
    with change() as session:
        removed = templates.remove_template(session, None, name, origin=origin())
        typer.echo(f"Removed template {removed.name}.")
