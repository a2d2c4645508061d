"""The servers Playbot may run playbooks on: adding, updating, (de)activating, listing, finding.

A server is a `servers` row: its inventory hostname (unique), the address Ansible connects
to (`ip_address`: an IP or a DNS name, Ansible's `ansible_host`), SSH port/user/key, its
environment (production runs need approval), tags (targets `tag:<t>`) and its connection
("ssh", or "local" for hosts that run on the worker itself).

Every change writes an audit row in the caller's transaction (`actor` None: the CLI or the
system; `origin` is merged into the row's details). Functions flush, never commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.audit import RequestInfo
from core.errors import InvalidInput, UnknownServer
from core.labels import clean_tags, has_tag, known_tags, parse_environment
from core.suggestions import closest
from db.models import Environment, Server, User

HOSTNAME_PATTERN = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,253}[A-Za-z0-9_])?$")
HOSTNAME_RULE = ("letters, digits, `.`, `_` and `-`, not starting or ending with `.` or `-`, "
                 "at most 255 characters")
ADDRESS_PATTERN = re.compile(r"^[A-Za-z0-9_.:%\[\]-]{1,45}$")
SSH_USER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
CONNECTIONS = ("ssh", "local")
MAX_KEY_PATH = 512


@dataclass(frozen=True)
class ServerSpec:
    """What an operator (or an inventory) says about one server, checked by `check_spec`."""

    hostname: str
    ip_address: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key_path: str | None = None
    environment: Environment = Environment.development
    tags: list[str] = field(default_factory=list)
    connection: str = "ssh"
    description: str | None = None

    def columns(self) -> dict[str, Any]:
        """The `servers` columns this spec sets (all but hostname)."""
        return {
            "ip_address": self.ip_address,
            "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user,
            "ssh_key_path": self.ssh_key_path,
            "environment": self.environment,
            "tags": list(self.tags),
            "connection": self.connection,
            "description": self.description,
        }


def check_spec(
    hostname: str,
    *,
    ip_address: str | None = None,
    ssh_port: int | str | None = 22,
    ssh_user: str | None = None,
    ssh_key_path: str | None = None,
    environment: str | Environment = Environment.development,
    tags: Iterable[Any] | None = None,
    connection: str = "ssh",
    description: str | None = None,
) -> ServerSpec:
    """Validate what was typed about a server; InvalidInput listing every problem."""
    problems: list[str] = []
    name = (hostname or "").strip()
    if not HOSTNAME_PATTERN.match(name):
        problems.append(f"Invalid hostname `{name}`: use {HOSTNAME_RULE}.")
    address = _optional(ip_address)
    if address is not None and (not ADDRESS_PATTERN.match(address) or "{" in address):
        problems.append(f"Invalid address `{address}`: give an IP address or a DNS name "
                        "(at most 45 characters, no spaces or templates).")
    port = _port(ssh_port, problems)
    user = _optional(ssh_user)
    if user is not None and not SSH_USER_PATTERN.match(user):
        problems.append(f"Invalid SSH user `{user}`.")
    key_path = _optional(ssh_key_path)
    if key_path is not None and (len(key_path) > MAX_KEY_PATH or "{" in key_path
                                 or "\n" in key_path or "\x00" in key_path):
        problems.append(f"Invalid SSH key path `{key_path[:80]}`: give a file path on the worker "
                        f"(at most {MAX_KEY_PATH} characters, no templates).")
    conn = (connection or "ssh").strip().lower()
    if conn not in CONNECTIONS:
        problems.append(f"Unsupported connection `{connection}`: Playbot runs hosts over "
                        "`ssh` or `local` (on the worker itself).")
    env: Environment | None = None
    try:
        env = parse_environment(environment)
    except InvalidInput as exc:
        problems.append(str(exc))
    cleaned: list[str] = []
    try:
        cleaned = clean_tags(tags)
    except InvalidInput as exc:
        problems.append(str(exc))
    if problems:
        raise InvalidInput(" ".join(problems))
    assert env is not None and port is not None
    return ServerSpec(hostname=name, ip_address=address, ssh_port=port, ssh_user=user,
                      ssh_key_path=key_path, environment=env, tags=cleaned, connection=conn,
                      description=_optional(description))


def add_server(
    session: Session,
    hostname: str,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
    **settings: Any,
) -> Server:
    """Register a new active server: `check_spec(hostname, **settings)`, then `create_server`.

    settings: `check_spec`'s keywords (ip_address, ssh_port, ssh_user, ssh_key_path,
    environment, tags, connection, description). Raises InvalidInput for bad values or when
    the hostname is already registered (active or deactivated).
    """
    return create_server(session, check_spec(hostname, **settings), actor=actor, origin=origin,
                         request=request)


def create_server(session: Session, spec: ServerSpec, *, actor: User | None = None,
                  origin: Mapping[str, Any] | None = None,
                  request: RequestInfo | None = None, action: str = "server.add") -> Server:
    """Insert the server `spec` describes (already checked). InvalidInput if it exists."""
    existing = find_server(session, spec.hostname)
    if existing is not None:
        state = "" if existing.is_active else (
            f" (deactivated: `playbot servers activate {existing.hostname}` turns it back on)")
        raise InvalidInput(f"Server `{existing.hostname}` is already registered{state}.")
    server = Server(hostname=spec.hostname, is_active=True, **spec.columns())
    session.add(server)
    session.flush()
    _audit(session, actor, action, server, origin, request, describe(server))
    return server


def update_server(session: Session, server: Server, spec: ServerSpec, *,
                  actor: User | None = None, origin: Mapping[str, Any] | None = None,
                  request: RequestInfo | None = None,
                  action: str = "server.update") -> dict[str, list[Any]]:
    """Make `server` match `spec`; returns the changes `{column: [before, after]}` (empty:
    nothing changed and no audit row written)."""
    changes: dict[str, list[Any]] = {}
    for column, wanted in spec.columns().items():
        current = getattr(server, column)
        if _comparable(current) != _comparable(wanted):
            changes[column] = [_comparable(current), _comparable(wanted)]
            setattr(server, column, wanted)
    if changes:
        session.flush()
        _audit(session, actor, action, server, origin, request, {"changes": changes})
    return changes


def deactivate_server(
    session: Session,
    hostname: str,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> Server:
    """Stop offering `hostname` as a target (its jobs and history stay). No change when it is
    already deactivated. Raises UnknownServer."""
    return _set_active(session, hostname, False, actor, origin, request)


def activate_server(
    session: Session,
    hostname: str,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> Server:
    """Offer a deactivated server as a target again. No change when already active."""
    return _set_active(session, hostname, True, actor, origin, request)


def list_servers(
    session: Session,
    *,
    environment: str | Environment | None = None,
    tag: str | None = None,
    active_only: bool = True,
) -> list[Server]:
    """Servers by hostname, optionally of one environment and/or carrying one tag.

    The tag is matched case-insensitively in Python, so it works the same on every database
    (the JSON column has no portable "contains"). Raises InvalidInput for an unknown
    environment; an unknown tag simply matches nothing.
    """
    query = select(Server).order_by(Server.hostname)
    if environment is not None and str(environment).strip():
        query = query.where(Server.environment == parse_environment(environment))
    if active_only:
        query = query.where(Server.is_active.is_(True))
    found = list(session.scalars(query))
    if tag is not None and tag.strip():
        found = [s for s in found if has_tag(s.tags, tag)]
    return found


def server_tags(session: Session, *, active_only: bool = True) -> list[str]:
    """Every tag carried by a (active) server, sorted."""
    query = select(Server.tags).order_by(Server.hostname)
    if active_only:
        query = query.where(Server.is_active.is_(True))
    return known_tags(session.scalars(query))


def find_server(session: Session, hostname: str) -> Server | None:
    """The server called `hostname` (exact, else case-insensitive), active or not, or None."""
    name = (hostname or "").strip()
    if not name:
        return None
    exact = session.scalar(select(Server).where(Server.hostname == name))
    if exact is not None:
        return exact
    return session.scalar(select(Server).where(func.lower(Server.hostname) == name.lower()))


def get_server(session: Session, hostname: str, *, active_only: bool = False) -> Server:
    """The server called `hostname`. Raises UnknownServer with the closest hostnames (and,
    with `active_only`, when it is deactivated)."""
    server = find_server(session, hostname)
    if server is not None and (server.is_active or not active_only):
        return server
    query = select(Server.hostname)
    if active_only:
        query = query.where(Server.is_active.is_(True))
    names = list(session.scalars(query))
    state = "is deactivated" if server is not None else "is not registered"
    raise UnknownServer(f"Server `{(hostname or '').strip()}` {state}.",
                        suggestions=closest(hostname or "", names))


def describe(server: Server) -> dict[str, Any]:
    """The server's settings as plain values (for audit details and reports)."""
    return {
        "ip_address": server.ip_address,
        "ssh_port": server.ssh_port,
        "ssh_user": server.ssh_user,
        "ssh_key_path": server.ssh_key_path,
        "environment": _comparable(server.environment),
        "tags": list(server.tags or []),
        "connection": server.connection,
    }


def _set_active(session: Session, hostname: str, active: bool, actor: User | None,
                origin: Mapping[str, Any] | None, request: RequestInfo | None) -> Server:
    server = get_server(session, hostname)
    if server.is_active == active:
        return server
    server.is_active = active
    session.flush()
    _audit(session, actor, "server.activate" if active else "server.deactivate", server,
           origin, request, {"environment": _comparable(server.environment)})
    return server


def _comparable(value: Any) -> Any:
    if isinstance(value, Environment):
        return value.value
    if isinstance(value, list | tuple):
        return list(value)
    return value


def _optional(value: str | None) -> str | None:
    text = (value or "").strip() if isinstance(value, str) else value
    return text or None


def _port(value: int | str | None, problems: list[str]) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 22
    if isinstance(value, bool):
        problems.append(f"Invalid SSH port `{value}`: give a number from 1 to 65535.")
        return None
    try:
        port = int(str(value).strip())
    except ValueError:
        problems.append(f"Invalid SSH port `{value}`: give a number from 1 to 65535.")
        return None
    if not 1 <= port <= 65535:
        problems.append(f"Invalid SSH port `{value}`: give a number from 1 to 65535.")
        return None
    return port


def _audit(session: Session, actor: User | None, action: str, server: Server,
           origin: Mapping[str, Any] | None, request: RequestInfo | None,
           details: Mapping[str, Any]) -> None:
    audit.record(session, user=actor, action=action, resource_type="server",
                 resource_id=server.hostname, details={**(origin or {}), **details},
                 request=request)
