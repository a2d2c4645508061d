"""Importing servers from an existing Ansible inventory file (INI or YAML).

`parse_inventory` reads the file with ansible-core's own inventory plugins (`ini`, `yaml`;
never the `script` plugin, so an executable file is read, not run), including the
`group_vars/` and `host_vars/` directories beside it, and turns each host into a
`ServerSpec`:

- environment: the host var `playbot_environment` if set, else the group named
  `production`, `staging` or `development` the host is in (directly or through a parent
  group); a host in none of them takes `default_environment`, or is refused when none is
  given (a production box must never slip in as development);
- tags: every other group of the host (parents included), except `all` and `ungrouped`;
- `ansible_host` → ip_address (the address Ansible connects to: an IP or a DNS name),
  `ansible_port` → ssh_port, `ansible_user` → ssh_user, `ansible_ssh_private_key_file` →
  ssh_key_path (the older `ansible_ssh_host/port/user` and `ansible_private_key_file` too),
  `ansible_connection=local` → connection "local"; ssh-like connections → "ssh"; other
  connection types are refused.

`import_servers` then creates or updates servers by hostname (audited one row per change)
and reports what was created, updated and left unchanged. Any bad host refuses the whole
import before anything is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.audit import RequestInfo
from core.errors import InvalidInput
from core.labels import parse_environment
from core.servers import ServerSpec, check_spec, create_server, find_server, update_server
from db.models import Environment, User

ENVIRONMENT_VAR = "playbot_environment"
IGNORED_GROUPS = ("all", "ungrouped")
YAML_SUFFIXES = (".yml", ".yaml", ".json")
SSH_CONNECTIONS = {"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                   "ansible.legacy.ssh", "ansible.builtin.paramiko_ssh",
                   "ansible.legacy.paramiko_ssh"}
LOCAL_CONNECTIONS = {"local", "ansible.builtin.local", "ansible.legacy.local"}
# Where each column comes from, first match wins.
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")


@dataclass
class ImportReport:
    """What `import_servers` did, by hostname. `updated` maps a host to the columns changed;
    `inactive` lists deactivated servers that were updated but left deactivated."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def parse_inventory(
    path: str | Path, *, default_environment: str | Environment | None = None
) -> list[ServerSpec]:
    """The hosts of the inventory file at `path`, as server specs sorted by hostname.

    Raises InvalidInput when the file cannot be read or parsed, has no hosts, or any host
    cannot be imported (every problem listed, hosts named).
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise InvalidInput(f"Inventory file {source} does not exist.")
    if not source.is_file():
        raise InvalidInput(f"Inventory {source} is not a file: give one INI or YAML inventory file.")
    fallback = parse_environment(default_environment) if default_environment else None
    hosts = _load(source.resolve())
    if not hosts:
        raise InvalidInput(f"Inventory {source} lists no hosts.")
    problems: list[str] = []
    specs: list[ServerSpec] = []
    seen: dict[str, str] = {}
    for name in sorted(hosts):
        groups, variables = hosts[name]
        if name.lower() in seen:
            problems.append(f"{name}: the inventory also has `{seen[name.lower()]}`; hostnames "
                            "must differ by more than letter case.")
            continue
        seen[name.lower()] = name
        try:
            specs.append(host_spec(name, groups, variables, default_environment=fallback))
        except InvalidInput as exc:
            problems.append(f"{name}: {exc}")
    if problems:
        raise InvalidInput(f"Inventory {source} cannot be imported, nothing was changed "
                           f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  - "
                           + "\n  - ".join(problems))
    return specs


def host_spec(
    name: str,
    groups: Iterable[str],
    variables: Mapping[str, Any],
    *,
    default_environment: Environment | None = None,
) -> ServerSpec:
    """One inventory host as a server spec (see the module docstring for the mapping).

    groups: every group the host belongs to, parents included. Raises InvalidInput.
    """
    group_list = [g for g in groups if g not in IGNORED_GROUPS]
    environment = _environment(group_list, variables, default_environment)
    env_names = {e.value for e in Environment}
    tags = [g for g in group_list if g.lower() not in env_names]
    connection = _connection(variables.get("ansible_connection"))
    return check_spec(
        name,
        ip_address=_text(_first(variables, _ADDRESS_VARS), "ansible_host"),
        ssh_port=_port(_first(variables, _PORT_VARS)),
        ssh_user=_text(_first(variables, _USER_VARS), "ansible_user"),
        ssh_key_path=_text(_first(variables, _KEY_VARS), "ansible_ssh_private_key_file"),
        environment=environment,
        tags=sorted(tags, key=str.lower),
        connection=connection,
    )


def import_servers(
    session: Session,
    hosts: Iterable[ServerSpec],
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> ImportReport:
    """Create or update one server per spec, matched by hostname (case-insensitive).

    A new host is created active ("server.import" audit row with its settings); an existing
    one is updated to match ("server.update" with the changes; its description is kept);
    a deactivated one is updated but stays deactivated (listed in `inactive`).
    """
    report = ImportReport()
    for spec in hosts:
        server = find_server(session, spec.hostname)
        if server is None:
            create_server(session, spec, actor=actor, origin=origin, request=request,
                          action="server.import")
            report.created.append(spec.hostname)
            continue
        if spec.description is None:
            spec = dataclasses.replace(spec, description=server.description)
        changes = update_server(session, server, spec, actor=actor, origin=origin,
                                request=request, action="server.update")
        if changes:
            report.updated[server.hostname] = sorted(changes)
        else:
            report.unchanged.append(server.hostname)
        if not server.is_active:
            report.inactive.append(server.hostname)
    return report


# --- reading the file with ansible-core ----------------------------------------------------


def _load(source: Path) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """hostname → (its groups, its effective variables) read by ansible-core's plugins."""
    # ansible-core is imported here, not at module level: it takes most of a second to load
    # and only the import needs it.
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.inventory.helpers import get_group_vars
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import inventory_loader
    from ansible.utils.vars import combine_vars
    from ansible.vars.plugins import get_vars_from_inventory_sources

    kind = "yaml" if source.suffix.lower() in YAML_SUFFIXES else "ini"
    plugin = inventory_loader.get(kind)
    loader = DataLoader()
    inventory = InventoryData()
    try:
        plugin.parse(inventory, loader, str(source), cache=False)
        inventory.reconcile_inventory()
        sources = [str(source)]
        for group in inventory.groups.values():
            group.vars = combine_vars(
                group.vars, get_vars_from_inventory_sources(loader, sources, [group], "task"))
        hosts: dict[str, tuple[list[str], dict[str, Any]]] = {}
        for host in inventory.hosts.values():
            host.vars = combine_vars(
                host.vars, get_vars_from_inventory_sources(loader, sources, [host], "task"))
            variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            groups = [str(g.name) for g in host.get_groups()]
            hosts[str(host.name)] = (groups, {str(k): _plain(v) for k, v in variables.items()})
    except AnsibleError as exc:
        hint = ""
        if kind == "ini" and _looks_like_yaml(source):
            hint = " It looks like YAML: YAML inventories need a .yml or .yaml file name."
        raise InvalidInput(f"Cannot read the {kind.upper()} inventory {source}: "
                           f"{_first_line(exc)}{hint}") from None
    return hosts


def _plain(value: Any) -> Any:
    """ansible-core's tagged strings and numbers as plain Python values."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _looks_like_yaml(source: Path) -> bool:
    try:
        head = source.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False
    lines = [ln.strip() for ln in head.splitlines() if ln.strip() and not ln.startswith("#")]
    return bool(lines) and (lines[0] == "---" or lines[0].startswith("all:"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- host variables → columns --------------------------------------------------------------


def _environment(groups: list[str], variables: Mapping[str, Any],
                 default: Environment | None) -> Environment:
    declared = variables.get(ENVIRONMENT_VAR)
    if declared is not None and str(declared).strip():
        try:
            return parse_environment(str(declared))
        except InvalidInput as exc:
            raise InvalidInput(f"{ENVIRONMENT_VAR}: {exc}") from None
    env_names = {e.value for e in Environment}
    found = sorted({g.lower() for g in groups if g.lower() in env_names})
    if len(found) > 1:
        raise InvalidInput(f"it is in the groups {' and '.join(found)}; a server has one "
                           f"environment (set the host var {ENVIRONMENT_VAR} to choose).")
    if found:
        return Environment(found[0])
    if default is not None:
        return default
    raise InvalidInput("no environment: put it in a `production`, `staging` or `development` "
                       f"group, set the host var {ENVIRONMENT_VAR}, or pass --default-env.")


def _connection(value: Any) -> str:
    if value is None or not str(value).strip():
        return "ssh"
    text = str(value).strip().lower()
    if text in LOCAL_CONNECTIONS:
        return "local"
    if text in SSH_CONNECTIONS:
        return "ssh"
    raise InvalidInput(f"ansible_connection `{value}` is not supported: Playbot runs hosts over "
                       "ssh or local.")


def _first(variables: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if variables.get(name) is not None:
            return variables[name]
    return None


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidInput(f"{name} must be a single value, not {type(value).__name__}.")
    return str(value)


def _port(value: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return str(value)
    return value
