"""`playbot servers`: register servers by hand or from an Ansible inventory (servers and
server groups; `--trust-host-keys` pins their SSH host keys), list and show them with their
groups and host variables, list and show server groups, deactivate and reactivate servers.
Vaulted and secret-looking variable values are never printed.

Every change is audited (user None, details `{"via": "cli", "os_user": ...}`); bad input
is refused on stderr with exit code 2 and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import select

from bot.cli import context
from bot.cli.changes import (
    activation_line,
    change,
    emit_json,
    emit_new_and_updated,
    emit_rows,
    origin,
)
from bot.cli.context import fail
from core import inventory, server_groups, servers
from core.audit import REDACTED, is_secret_key
from core.errors import InvalidInput, PlaybotError, UnknownServer
from core.servers import is_vaulted
from core.suggestions import closest
from db.models import ServerGroup
from workers import known_hosts

app = typer.Typer(no_args_is_help=True, help="Servers playbooks run on.")

ENVIRONMENTS = "{production|staging|development}"
ENV_HELP = "production (runs need approval), staging or development."


@app.command("add")
def add(
    hostname: Annotated[str, typer.Argument(help="Inventory hostname, e.g. web-01.")],
    ip: Annotated[str | None, typer.Option("--ip", help="Address to connect to (IP or DNS name).")] = None,
    port: Annotated[int, typer.Option("--port", help="SSH port.")] = 22,
    user: Annotated[str | None, typer.Option("--user", help="SSH user.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="SSH private key path on the worker.")] = None,
    env: Annotated[str, typer.Option("--env", metavar=ENVIRONMENTS, help=ENV_HELP)] = "development",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeat for more).")] = None,
    local: Annotated[bool, typer.Option("--local", help="Run on the worker itself (connection local).")] = False,
    description: Annotated[str | None, typer.Option("--description", help="Free text.")] = None,
    var: Annotated[list[str] | None, typer.Option(
        "--var", help="A host variable NAME=VALUE (repeat for more; VALUE is JSON if it "
                      "parses as JSON, else text), e.g. ansible_become=true.")] = None,
) -> None:
    """Register a server."""
    with change() as session:
        server = servers.add_server(
            session, hostname, ip_address=ip, ssh_port=port, ssh_user=user, ssh_key_path=key,
            environment=env, tags=_split(tag), connection="local" if local else "ssh",
            description=description, host_vars=_variables(var), origin=origin())
        typer.echo(f"Added {server.hostname} ({server.environment.value}"
                   f"{', local' if server.connection == 'local' else ''}"
                   f"{', tags ' + ', '.join(server.tags) if server.tags else ''}).")


@app.command("list")
def list_(
    env: Annotated[str | None, typer.Option("--env", metavar=ENVIRONMENTS, help="Only this environment.")] = None,
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
                 "active": s.is_active, "description": s.description,
                 "groups": [g.name for g in s.groups],
                 "host_vars": sorted(s.host_vars or {})} for s in found]
    headers = ["hostname", "environment", "address", "port", "user", "connection", "tags",
               "groups"]
    if show_all:
        headers.append("active")
    emit_rows(rows, as_json=as_json,
              empty="No servers match." if env or tag else
                    "No servers. Add one (playbot servers add HOSTNAME) or import an inventory "
                    "(playbot servers import FILE).",
              headers=headers,
              cells=[[r["hostname"], r["environment"], r["address"] or "-", r["port"],
                      r["user"] or "-", r["connection"], ",".join(r["tags"]) or "-",
                      ",".join(r["groups"]) or "-"]
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
    inventory_file: Annotated[Path, typer.Argument(
        metavar="INVENTORY", help="An Ansible inventory: INI or YAML file, or a directory.")],
    default_env: Annotated[str | None, typer.Option(
        "--default-env", help="Environment of hosts in no production/staging/development group "
                              "and without playbot_environment (default: refuse them).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    vault_password_file: Annotated[Path | None, typer.Option(
        "--vault-password-file", help="Ansible Vault password file, for vaulted values Playbot "
                                      "must read (ansible_host...) and vaulted vars files.")] = None,
    skip_unsupported: Annotated[bool, typer.Option(
        "--skip-unsupported", help="Leave out (and list) hosts Playbot cannot run (winrm, "
                                   "docker, network_cli...) instead of refusing the import.")] = False,
    trust_host_keys: Annotated[bool, typer.Option(
        "--trust-host-keys", help="After the import, scan and pin the SSH host keys of its "
                                  "ssh servers in Playbot's known_hosts (prints fingerprints).")] = False,
) -> None:
    """Create or update servers and server groups from an existing Ansible inventory.

    Read by Ansible itself (ansible-inventory). Groups production/staging/development (or the host var playbot_environment) give the environment, other groups become tags and server groups with their variables; ansible_host, ansible_port, ansible_user, ansible_ssh_private_key_file and ansible_connection fill the server's columns, its other variables are kept. See docs/operators.md.
    """
    with change(dry_run=dry_run) as session:
        found = inventory.read_inventory(inventory_file, default_environment=default_env,
                                         vault_password_file=vault_password_file,
                                         skip_unsupported=skip_unsupported)
        report = inventory.import_inventory(session, found, origin={
            **origin(), "inventory": str(found.source)})
    specs = found.servers
    prefix = "Would import" if dry_run else "Imported"
    typer.echo(f"{prefix} {len(specs)} host{'s' if len(specs) != 1 else ''} from "
               f"{inventory_file}: {len(report.created)} new, {len(report.updated)} updated, "
               f"{len(report.unchanged)} unchanged.")
    emit_new_and_updated(report.created, report.updated)
    for name in report.inactive:
        typer.echo(f"  note: {name} is deactivated and stays so "
                   f"(playbot servers activate {name})")
    for skipped in found.skipped:
        typer.echo(f"  skipped: {skipped.hostname} (connection {skipped.connection}: Playbot "
                   "runs hosts over ssh or local)")
    groups = report.groups
    if groups is not None:
        typer.echo(f"Groups: {len(groups.created)} new, {len(groups.updated)} updated, "
                   f"{len(groups.unchanged)} unchanged, {len(groups.deleted)} removed.")
        emit_new_and_updated([f"group {g}" for g in groups.created],
                             {f"group {g}": what for g, what in groups.updated.items()})
        for name in groups.deleted:
            typer.echo(f"  - group {name} (no longer in the inventory, now empty)")
        for name, hosts in groups.left.items():
            typer.echo(f"  ~ group {name} (no longer in the inventory: left by "
                       f"{', '.join(hosts)})")
    if trust_host_keys and not dry_run:
        _trust([(s.hostname, s.ip_address or s.hostname, s.ssh_port) for s in specs
                if s.connection == "ssh"])


@app.command("show")
def show(
    hostname: Annotated[str, typer.Argument(help="The server.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One server: its columns, groups and host variables (secret-looking values hidden)."""
    with change() as session:
        server = servers.get_server(session, hostname)
        row = {"hostname": server.hostname, "environment": server.environment.value,
               "address": server.ip_address, "port": server.ssh_port, "user": server.ssh_user,
               "key": server.ssh_key_path, "connection": server.connection,
               "tags": list(server.tags or []), "active": server.is_active,
               "description": server.description,
               "groups": [g.name for g in server.groups],
               "host_vars": _masked(server.host_vars or {})}
    if as_json:
        emit_json(row)
        return
    for key in ("hostname", "environment", "address", "port", "user", "key", "connection"):
        typer.echo(f"{key}: {row[key] if row[key] is not None else '-'}")
    typer.echo(f"tags: {', '.join(row['tags']) or '-'}")
    typer.echo(f"groups: {', '.join(row['groups']) or '-'}")
    typer.echo(f"active: {'yes' if row['active'] else 'no'}")
    if row["description"]:
        typer.echo(f"description: {row['description']}")
    typer.echo("host vars:" + ("" if row["host_vars"] else " -"))
    for name, value in sorted(row["host_vars"].items()):
        typer.echo(f"  {name}: {json.dumps(value, default=str)}")


@app.command("groups")
def groups_(
    name: Annotated[str | None, typer.Argument(help="Show this group (default: list all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List server groups, or show one: its variables, children, direct members and servers."""
    with change() as session:
        if name is None:
            rows = [{"name": g.name, "children": [c.name for c in g.children],
                     "members": [s.hostname for s in g.servers],
                     "variables": sorted(g.variables or {})}
                    for g in session.scalars(select(ServerGroup).order_by(ServerGroup.name))]
        else:
            group = server_groups.find_group(session, name)
            if group is None:
                raise UnknownServer(f"No server group named `{name}`.", suggestions=closest(
                    name, server_groups.group_names(session)))
            try:
                every = [s.hostname for s in server_groups.servers_in_group(session, group.name)]
            except UnknownServer:
                every = []
            row = {"name": group.name, "parents": [p.name for p in group.parents],
                   "children": [c.name for c in group.children],
                   "members": [s.hostname for s in group.servers], "servers": every,
                   "variables": _masked(group.variables or {})}
    if name is None:
        emit_rows(rows, as_json=as_json,
                  empty="No server groups. Import an inventory (playbot servers import FILE).",
                  headers=["group", "children", "members", "variables"],
                  cells=[[r["name"], ",".join(r["children"]) or "-", len(r["members"]),
                          ",".join(r["variables"]) or "-"] for r in rows])
        return
    if as_json:
        emit_json(row)
        return
    typer.echo(f"group: {row['name']}")
    for key in ("parents", "children", "members", "servers"):
        typer.echo(f"{key}: {', '.join(row[key]) or '-'}")
    typer.echo("variables:" + ("" if row["variables"] else " -"))
    for var, value in sorted(row["variables"].items()):
        typer.echo(f"  {var}: {json.dumps(value, default=str)}")


def _trust(targets: list[tuple[str, str, int]]) -> None:
    """Pin the host keys of `targets` (after the import committed) and print fingerprints."""
    if not targets:
        typer.echo("No ssh servers to trust.")
        return
    path = context.settings().playbot_known_hosts
    try:
        keys = known_hosts.trust(targets, path, replace=False)
    except PlaybotError as exc:
        fail(f"the import is done, but host keys were not pinned: {exc}")
    for key in keys:
        note = (" (CHANGED: the host offers another key than the pinned one; this may be an "
                f"attack. Check it, then `playbot servers trust {key.host} --replace`)"
                if key.status == known_hosts.CHANGED else "")
        typer.echo(f"  {key.status} {key.host} [{key.address}]:{key.port} {key.key_type} "
                   f"{key.fingerprint}{note}")
    if any(key.status == known_hosts.CHANGED for key in keys):
        raise typer.Exit(1)


def _masked(values: dict[str, Any]) -> dict[str, Any]:
    """Variables as shown: vaulted values as `(vault-encrypted)`, secret-looking ones hidden."""
    shown: dict[str, Any] = {}
    for key, value in values.items():
        if key == inventory.VAULT_FILES_KEY:
            shown[key] = f"({len(value)} vault-encrypted file(s))"
        elif is_vaulted(value):
            shown[key] = "(vault-encrypted)"
        elif is_secret_key(key):
            shown[key] = REDACTED
        else:
            shown[key] = value
    return shown


def _set_active(hostname: str, *, active: bool) -> None:
    """Turn the server on or off (the core audits a change) and say what changed, if anything."""
    switch = servers.activate_server if active else servers.deactivate_server
    with change() as session:
        was_active = servers.get_server(session, hostname).is_active
        server = switch(session, hostname, origin=origin())
        typer.echo(activation_line(server.hostname, was_active=was_active, active=active))


def _variables(pairs: list[str] | None) -> dict[str, Any]:
    """`--var a=1 --var b=text` → {"a": 1, "b": "text"}; InvalidInput without `=`."""
    found: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"Invalid --var `{pair}`: give NAME=VALUE.")
        try:
            found[name.strip()] = json.loads(value)
        except ValueError:
            found[name.strip()] = value
    return found


def _split(tags: list[str] | None) -> list[str]:
    """`--tag web --tag eu,db` → ["web", "eu", "db"]."""
    return [part.strip() for value in tags or [] for part in value.split(",") if part.strip()]
