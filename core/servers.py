"""The servers Playbot may run playbooks on: adding, updating, (de)activating, listing, finding.

A server is a `servers` row: its inventory hostname (unique), the address Ansible connects
to (`ip_address`: an IP or a DNS name, Ansible's `ansible_host`), SSH port/user/key, its
environment (production runs need approval), tags (targets `tag:<t>`), its connection
("ssh", or "local" for hosts that run on the worker itself) and its own inventory variables
(`host_vars`, from an import or the CLI, never from chat).

What is accepted:
- hostname: what Ansible accepts as an inventory hostname and a `--limit` pattern can name:
  letters and digits of any script (internationalised names are stored as Ansible sees
  them, not punycoded), `.`, `_`, `-`, and IPv6 literals (`2001:db8::2`); never
  whitespace, control characters, templates or pattern syntax (`,` `:` outside an IPv6
  literal, `!` `&` `*` `[` `]` `~` ...); at most 255 characters.
- address: an IPv4 or IPv6 literal (brackets and a `%zone` allowed, stored without the
  brackets) or a DNS name of at most 253 characters (labels of letters, digits, `_`, `-`).
- host_vars: a JSON object whose keys are Ansible variable names (identifiers); clear-text
  connection passwords (`ansible_password`, `ansible_become_password`, ...) are refused
  with advice to vault them; vaulted values are kept as `{"__ansible_vault": ciphertext}`.

Every change writes an audit row in the caller's transaction (`actor` None: the CLI or the
system; `origin` is merged into the row's details). Functions flush, never commit.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
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

# A first sieve (no whitespace, control characters or pattern/template syntax); `valid_hostname`
# then checks every character's Unicode category and the IPv6 case.
HOSTNAME_PATTERN = re.compile(r"^[^\s\x00-\x1f\x7f,!&*?~\[\]{}()'\"\\/;|<>$=#@^`+]{1,255}$")
HOSTNAME_RULE = ("letters and digits (any script), `.`, `_` and `-`, or an IPv6 literal; not "
                 "starting or ending with `.` or `-`; at most 255 characters")
ADDRESS_PATTERN = re.compile(r"^[^\s\x00-\x1f\x7f,{}]{1,255}$")
MAX_DNS_NAME = 253
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VAULT_KEY = "__ansible_vault"
# Ansible's own connection and privilege-escalation passwords: never kept in clear text.
CLEAR_TEXT_REFUSED = frozenset({
    "ansible_password", "ansible_ssh_pass", "ansible_ssh_password", "ansible_become_password",
    "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password", "ansible_su_pass",
    "ansible_su_password", "ansible_httpapi_pass", "ansible_httpapi_password",
    "ansible_winrm_password", "ansible_paramiko_pass", "ansible_paramiko_password",
})
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
    host_vars: dict[str, Any] = field(default_factory=dict)

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
            "host_vars": dict(self.host_vars),
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
    host_vars: Mapping[str, Any] | None = None,
) -> ServerSpec:
    """Validate what was typed about a server; InvalidInput listing every problem."""
    problems: list[str] = []
    name = (hostname or "").strip()
    if not valid_hostname(name):
        problems.append(f"Invalid hostname `{_shown(name)}`: use {HOSTNAME_RULE}.")
    address = _optional(ip_address)
    if address is not None:
        address = normal_address(address)
        if address is None:
            problems.append(f"Invalid address `{_shown(str(ip_address))}`: give an IP address or "
                            f"a DNS name (at most {MAX_DNS_NAME} characters, no spaces or "
                            "templates).")
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
    variables = _host_vars(host_vars, problems)
    if problems:
        raise InvalidInput(" ".join(problems))
    assert env is not None and port is not None
    return ServerSpec(hostname=name, ip_address=address, ssh_port=port, ssh_user=user,
                      ssh_key_path=key_path, environment=env, tags=cleaned, connection=conn,
                      description=_optional(description), host_vars=variables)


def valid_hostname(name: str) -> bool:
    """Whether `name` can be a server's inventory hostname (see the module docstring)."""
    if not name or len(name) > 255 or not HOSTNAME_PATTERN.match(name) or "{{" in name:
        return False
    if ":" in name or "%" in name:
        return _ip(name) is not None and ":" in name  # only IPv6 literals carry these
    if name[0] in ".-" or name[-1] in ".-":
        return False
    return all(ch in "._-" or unicodedata.category(ch)[0] in "LNM" for ch in name)


def normal_address(value: str) -> str | None:
    """The address as stored (IPv6 without brackets), or None when it is no IP address and
    no DNS name."""
    text = value.strip()
    if not text or not ADDRESS_PATTERN.match(text) or "{" in text:
        return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if _ip(text) is not None:
        return text
    if len(text) > MAX_DNS_NAME or ":" in text or "%" in text:
        return None
    labels = text.removesuffix(".").split(".")
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return None
        if not all(ch in "_-" or unicodedata.category(ch)[0] in "LNM" for ch in label):
            return None
    return text


def is_vaulted(value: Any) -> bool:
    """Whether `value` is a vault-encrypted value as Playbot keeps it."""
    return isinstance(value, Mapping) and set(value) == {VAULT_KEY} and isinstance(
        value[VAULT_KEY], str)


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
    nothing changed and no audit row written). Host variables are reported by name only,
    `{"host_vars": {"added": [...], "removed": [...], "changed": [...]}}`: their values may
    be secrets and never reach the audit trail."""
    changes: dict[str, Any] = {}
    for column, wanted in spec.columns().items():
        current = getattr(server, column)
        if column == "host_vars":
            diff = variable_changes(current or {}, wanted)
            if diff:
                changes[column] = diff
                server.host_vars = dict(wanted)
            continue
        if _comparable(current) != _comparable(wanted):
            changes[column] = [_comparable(current), _comparable(wanted)]
            setattr(server, column, wanted)
    if changes:
        session.flush()
        _audit(session, actor, action, server, origin, request, {"changes": changes})
    return changes


def variable_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[str]]:
    """Which variable names were added, removed or changed between two mappings (only the
    non-empty lists; {} when they are equal)."""
    diff = {
        "added": sorted(k for k in after if k not in before),
        "removed": sorted(k for k in before if k not in after),
        "changed": sorted(k for k in after if k in before and before[k] != after[k]),
    }
    return {k: v for k, v in diff.items() if v}


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
        "host_vars": sorted(server.host_vars or {}),  # names only: values may be secrets
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


def _ip(text: str) -> Any:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _shown(text: str) -> str:
    """User text in a message: control characters made visible, at most 80 characters."""
    visible = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return visible if len(visible) <= 80 else visible[:77] + "..."


def _host_vars(values: Mapping[str, Any] | None, problems: list[str]) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        problems.append("Host variables must be a mapping of names to values.")
        return {}
    bad = sorted(str(k) for k in values if not isinstance(k, str) or not VARIABLE_NAME.match(k))
    if bad:
        problems.append(f"Invalid host variable name{'s' if len(bad) > 1 else ''} "
                        f"{', '.join(f'`{_shown(b)}`' for b in bad)}: Ansible variable names "
                        "are letters, digits and `_`, not starting with a digit.")
    clear = sorted(k for k, v in values.items() if k in CLEAR_TEXT_REFUSED and v is not None
                   and not is_vaulted(v))
    if clear:
        problems.append(f"{', '.join(clear)} in clear text: Playbot keeps no password in clear "
                        "text; vault it (`ansible-vault encrypt_string --name "
                        f"{clear[0]}`) or use an SSH key.")
    try:
        json.dumps(dict(values), allow_nan=False)
    except (TypeError, ValueError):
        problems.append("Host variables must be plain data (strings, numbers, booleans, lists, "
                        "mappings).")
    return {str(k): v for k, v in values.items()}


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
