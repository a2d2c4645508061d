"""`playbot servers`: register servers by hand or from an Ansible inventory, list them,
deactivate and reactivate them.

Every change is audited (user None, details `{"via": "cli", "os_user": ...}`); bad input
is refused on stderr with exit code 2 and nothing written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.changes import (
    activation_line,
    change,
    emit_new_and_updated,
    emit_rows,
    origin,
)
from core import inventory, servers

app = typer.Typer(no_args_is_help=True, help="Servers playbooks run on.")

ENV_HELP = "production (runs need approval), staging or development."


@app.command("add")
def add(
    hostname: Annotated[str, typer.Argument(help="Inventory hostname, e.g. web-01.")],
    ip: Annotated[str | None, typer.Option("--ip", help="Address to connect to (IP or DNS name).")] = None,
    port: Annotated[int, typer.Option("--port", help="SSH port.")] = 22,
    user: Annotated[str | None, typer.Option("--user", help="SSH user.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="SSH private key path on the worker.")] = None,
    env: Annotated[str, typer.Option("--env", help=ENV_HELP)] = "development",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeat for more).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Run on the worker itself (connection local).")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
) -> None:
    """Register a server."""
    with change() as session:
        server = servers.add_server(
            session, hostname, ip_address=ip, ssh_port=port, ssh_user=user, ssh_key_path=key,
            environment=env, tags=_split(tag), connection="local" if local else "ssh",
            description=description, origin=origin())
        typer.echo(f"Added {server.hostname} ({server.environment.value}"
                   f"{', local' if server.connection == 'local' else ''}"
                   f"{', tags ' + ', '.join(server.tags) if server.tags else ''}).")


@app.command("list")
def list_(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only servers with this tag.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Include deactivated servers.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List servers, optionally of one environment or tag."""
    with change() as session:
        found = servers.list_servers(session, environment=env, tag=tag, active_only=not show_all)
        rows = [{"hostname": s.hostname, "environment": s.environment.value,
                 "address": s.ip_address, "port": s.ssh_port, "user": s.ssh_user,
                 "key": s.ssh_key_path, "connection": s.connection, "tags": list(s.tags or []),
                 "active": s.is_active, "description": s.description} for s in found]
    headers = ["hostname", "environment", "address", "port", "user", "connection", "tags"]
    if show_all:
        headers.append("active")
    emit_rows(rows, as_json=as_json,
              empty="No servers match." if env or tag else
                    "No servers. Add one (playbot servers add HOSTNAME) or import an inventory "
                    "(playbot servers import FILE).",
              headers=headers,
              cells=[[r["hostname"], r["environment"], r["address"] or "-", r["port"],
                      r["user"] or "-", r["connection"], ",".join(r["tags"]) or "-"]
                     + (["yes" if r["active"] else "no"] if show_all else [])
                     for r in rows])


@app.command("deactivate")
def deactivate(hostname: Annotated[str, typer.Argument(help="The server.")]) -> None:
    """Stop offering a server as a target (its jobs and history stay)."""
    _set_active(hostname, active=False)


@app.command("activate")
def activate(hostname: Annotated[str, typer.Argument(help="The server.")]) -> None:
    """Offer a deactivated server as a target again."""
    _set_active(hostname, active=True)


@app.command("import")
def import_(
    inventory_file: Annotated[Path, typer.Argument(metavar="INVENTORY",
                                                   help="An Ansible inventory file (INI or YAML).")],
    default_env: Annotated[str | None, typer.Option(
        "--default-env", help="Environment of hosts in no production/staging/development group "
                              "and without playbot_environment (default: refuse them).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
) -> None:
    """Create or update servers from an existing Ansible inventory.

    Groups production/staging/development (or the host var playbot_environment) give the environment, other groups become tags; ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_connection=local fill the server's columns.
    """
    with change(dry_run=dry_run) as session:
        specs = inventory.parse_inventory(inventory_file, default_environment=default_env)
        report = inventory.import_servers(session, specs, origin={
            **origin(), "inventory": str(inventory_file.expanduser().resolve())})
    prefix = "Would import" if dry_run else "Imported"
    typer.echo(f"{prefix} {len(specs)} host{'s' if len(specs) != 1 else ''} from "
               f"{inventory_file}: {len(report.created)} new, {len(report.updated)} updated, "
               f"{len(report.unchanged)} unchanged.")
    emit_new_and_updated(report.created, report.updated)
    for name in report.inactive:
        typer.echo(f"  note: {name} is deactivated and stays so "
                   f"(playbot servers activate {name})")


def _set_active(hostname: str, *, active: bool) -> None:
    """Turn the server on or off (the core audits a change) and say what changed, if anything."""
    switch = servers.activate_server if active else servers.deactivate_server
    with change() as session:
        was_active = servers.get_server(session, hostname).is_active
        server = switch(session, hostname, origin=origin())
        typer.echo(activation_line(server.hostname, was_active=was_active, active=active))


def _split(tags: list[str] | None) -> list[str]:
    """`--tag web --tag eu,db` → ["web", "eu", "db"]."""
    return [part.strip() for value in tags or [] for part in value.split(",") if part.strip()]
