"""`playbot servers trust HOST... [--replace] [--bastion ADDRESS[:PORT]]`: scan servers' SSH
host keys, print their fingerprints and pin them in Playbot's known_hosts
(PLAYBOT_KNOWN_HOSTS).

A key that differs from the pinned one is never replaced without `--replace` (the command
then exits 1 and says so). Unknown servers and hosts that cannot be scanned exit 2 with
nothing pinned. Each server whose keys were looked at gets an audit row
"server.trust_host_key" (fingerprints stored as hex SHA-256: the audit trail redacts
long base64 strings).
"""

from __future__ import annotations

import base64
import re
from typing import Annotated

import typer

from bot.cli.changes import change, origin
from bot.cli.context import fail, settings
from core import audit, servers
from core.errors import InvalidInput
from workers.known_hosts import CHANGED, HostKey, marker, trust

ACTION = "server.trust_host_key"


def register(app: typer.Typer) -> None:
    """Add the `trust` command to the `servers` command group."""
    app.command("trust")(trust_command)


def trust_command(
    hostnames: Annotated[list[str] | None, typer.Argument(
        metavar="HOST...", help="Registered servers (their inventory hostnames).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Pin the key a server offers now even if another one is pinned "
                          "(only after checking it with the server's owner).")] = False,
    bastion: Annotated[list[str] | None, typer.Option(
        "--bastion", metavar="ADDRESS[:PORT]",
        help="Also pin a jump host that is not a server (repeat for more).")] = None,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds to wait per host.")] = 5,
) -> None:
    """Scan servers' SSH host keys, print their fingerprints and pin them."""
    if not hostnames and not bastion:
        fail("give at least one server (or --bastion ADDRESS[:PORT])")
    known_hosts = settings().playbot_known_hosts
    refused = False
    with change() as session:
        targets: list[tuple[str, str, int]] = []
        for name in hostnames or []:
            server = servers.get_server(session, name)
            if server.connection == "local":
                raise InvalidInput(f"Server `{server.hostname}` runs on the worker itself "
                                   "(connection local): it has no SSH host key.")
            targets.append((server.hostname, server.ip_address or server.hostname,
                            int(server.ssh_port or 22)))
        targets += [_bastion(value) for value in bastion or []]
        keys = trust(targets, known_hosts, replace=replace, timeout=timeout)
        for host, address, port in targets:
            mine = [k for k in keys if (k.host, k.address, k.port) == (host, address, port)]
            audit.record(session, user=None, action=ACTION, resource_type="server",
                         resource_id=host, details={
                             **origin(), "address": address, "port": port, "replace": replace,
                             "known_hosts": str(known_hosts),
                             "host_keys": [{"type": k.key_type, "status": k.status,
                                            "sha256_hex": _hex(k.fingerprint)} for k in mine]})
    for key in keys:
        typer.echo(_line(key))
        refused = refused or key.status == CHANGED
    for host in dict.fromkeys(k.host for k in keys if k.status == CHANGED):
        again = f"--bastion {_marker_of(keys, host)}" if host.startswith("bastion ") else host
        typer.echo(f"WARNING: {host} offers a different host key than the one pinned. This may "
                   "be an attack (someone between Playbot and the server) or a reinstalled "
                   "server. Check the new fingerprint with the server's owner (on the server: "
                   "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); only then run "
                   f"`playbot servers trust {again} --replace`.", err=True)
    if refused:
        raise typer.Exit(1)


def _line(key: HostKey) -> str:
    what = {"pinned": "pinned", "unchanged": "already pinned", "replaced": "replaced (pinned)",
            "changed": "CHANGED: not pinned"}.get(key.status, key.status)
    return f"{key.host} {marker(key.address, key.port)} {key.key_type} {key.fingerprint}: {what}"


def _bastion(value: str) -> tuple[str, str, int]:
    text = value.strip()
    if found := re.fullmatch(r"\[([^\]]+)\]:(\d+)", text):
        address, port = found[1], int(found[2])
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise InvalidInput(f"Invalid bastion `{value}`: give ADDRESS or ADDRESS:PORT.")
        address, port = address, int(port_text)
    else:
        address, port = text.strip("[]"), 22
    if not address or not 1 <= port <= 65535:
        raise InvalidInput(f"Invalid bastion `{value}`: give ADDRESS or ADDRESS:PORT.")
    return f"bastion {marker(address, port)}", address, port


def _marker_of(keys: list[HostKey], host: str) -> str:
    key = next(k for k in keys if k.host == host)
    return marker(key.address, key.port)


def _hex(fingerprint: str) -> str:
    digest = fingerprint.removeprefix("SHA256:")
    return base64.b64decode(digest + "=" * (-len(digest) % 4)).hex()
