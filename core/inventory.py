"""Importing servers and server groups from an existing Ansible inventory.

Reading: `read_inventory` asks Ansible itself. It runs the venv's `ansible-inventory -i SOURCE
--list` (every host's variables merged as Ansible merges them: what fills the columns) and
`--list --export` (each group's and host's own variables, children and direct members: what
is stored) as subprocesses, in a scrubbed environment (no ANSIBLE_* of the caller, an empty
ansible.cfg, a private HOME, a temporary working directory), with a timeout. SOURCE is an
INI or YAML file (any name; YAML may have no extension, as in Ansible) or a directory
inventory (`hosts` + `group_vars/` + `host_vars/`); the `group_vars/` and `host_vars/`
beside a file are read too. Only the `ini` and `yaml` inventory plugins are enabled: an
executable inventory script is refused, never run (convert it first: `ansible-inventory -i
SCRIPT --list --yaml > hosts.yml`, review, import), and so are dynamic inventory plugin
configs (`plugin: aws_ec2`) that would call out to a cloud.

Each host becomes a `ServerSpec`:
- columns: `ansible_host` -> ip_address (IP literal, IPv6 without brackets, or DNS name up
  to 253 characters; unset: Ansible connects to the hostname), `ansible_port` -> ssh_port,
  `ansible_user` -> ssh_user, `ansible_ssh_private_key_file` -> ssh_key_path (checked
  with `core.ssh_keys.check_key_file` for ssh hosts), `ansible_connection` local/ssh ->
  connection (the older `ansible_ssh_host/port/user` and `ansible_private_key_file` too);
  values are Ansible's merged ones (host over child group over parent group over `all`);
- environment: the groups `production`, `staging`, `development` (any case, directly or
  through parents) and the merged variable `playbot_environment`. `playbot_environment`
  wins, except that it can never take a host out of production: a host in a production
  group whose `playbot_environment` says otherwise is refused. A host in two environment
  groups needs `playbot_environment` to choose; a host in none takes the default
  environment or is refused;
- tags: every other group of the host (parents included) except `all` and `ungrouped`
  (names that are not valid tags stay groups only);
- host_vars: the host's own variables (Ansible's `--export`: inventory line, host YAML,
  `host_vars/`) minus the column variables and `playbot_environment`. Connection-shaping
  ones (`ansible_become*`, `ansible_ssh_common_args`, `ansible_python_interpreter`...) are
  kept: an import is made by someone with shell access. Clear-text connection passwords are
  refused (see `core.servers`).

Groups become `GroupSpec`s (written by `core.server_groups.sync_groups`): every group but
`ungrouped`, with its own variables (`[g:vars]`, YAML `vars:`, `group_vars/`), its child
groups and its direct members (hosts skipped as unsupported left out). `all` keeps only its
variables (no members, no children): Ansible's `all` covers every host of a run anyway.
Group names must be usable in a `hosts:` pattern (see `core.server_groups.check_group_name`).

Vault, and how vaulted data is represented (the run inventory relies on it):
- An inline `!vault` value is stored still encrypted, exactly as `ansible-inventory --list`
  prints it: `{"__ansible_vault": "<ciphertext>"}` in `servers.host_vars` or
  `server_groups.variables`, at any depth. A run inventory written as JSON/YAML through
  Ansible's loaders turns it back into a vaulted value that `ansible-playbook
  --vault-password-file` decrypts only if a task uses it.
- A vault-encrypted vars file (`group_vars/db.yml`, `host_vars/h1/secret.yml`) is stored
  as its whole ciphertext, never decrypted: the group's (host's) variables get the key
  `__playbot_vault_files`, a list of the files' texts in Ansible's load order, and lose the
  variables those files define. The run inventory writes each text as a file under
  `group_vars/<group>/` (`host_vars/<host>/`) beside itself, not as a variable.
- Playbot decrypts only what it must read: a vaulted column variable or
  `playbot_environment` (its value goes to the column in clear: it is an address, a port, a
  user, a path), and vaulted vars files to learn which variables they define. That needs
  `vault_password_file`; without it the import is refused naming the variable and where it
  is set, or the files. Vaulted values Playbot never reads need no password.

Hosts Playbot cannot run (`ansible_connection` other than ssh/paramiko/smart/local: winrm,
psrp, docker, network_cli...) are refused all together, listed, unless `skip_unsupported`,
which lists and leaves them out (and out of their groups).

`import_inventory` then writes servers (`import_servers`) and groups in the caller's
transaction. Any bad host or group refuses the whole import before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from core import server_groups
from core.audit import RequestInfo
from core.errors import InvalidInput
from core.labels import TAG_PATTERN, parse_environment
from core.server_groups import GroupReport, GroupSpec
from core.servers import (
    VAULT_KEY,
    ServerSpec,
    check_spec,
    create_server,
    find_server,
    is_vaulted,
    update_server,
)
from core.ssh_keys import check_key_file
from db.models import Environment, Server, User

ENVIRONMENT_VAR = "playbot_environment"
VAULT_FILES_KEY = "__playbot_vault_files"
IGNORED_GROUPS = ("all", "ungrouped")
INVENTORY_TIMEOUT = 120  # seconds one ansible-inventory (or ansible-vault) may take
ENABLED_PLUGINS = "ansible.builtin.ini,ansible.builtin.yaml"
SSH_CONNECTIONS = {"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                   "ansible.legacy.ssh", "ansible.builtin.paramiko_ssh",
                   "ansible.legacy.paramiko_ssh"}
LOCAL_CONNECTIONS = {"local", "ansible.builtin.local", "ansible.legacy.local"}
# Where each column comes from, first match wins.
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_VARS = ("ansible_ssh_private_key_file", "ansible_private_key_file")
_CONNECTION_VARS = ("ansible_connection",)
# Variables Playbot reads (so decrypts when vaulted) and keeps out of host_vars.
COLUMN_VARS = frozenset(_ADDRESS_VARS + _PORT_VARS + _USER_VARS + _KEY_VARS + _CONNECTION_VARS
                        + (ENVIRONMENT_VAR,))
_PURPOSE = {**dict.fromkeys(_ADDRESS_VARS, "the server's address"),
            **dict.fromkeys(_PORT_VARS, "the SSH port"),
            **dict.fromkeys(_USER_VARS, "the SSH user"),
            **dict.fromkeys(_KEY_VARS, "the SSH key path"),
            "ansible_connection": "the connection", ENVIRONMENT_VAR: "the environment"}
_VAULT_HEADER = "$ANSIBLE_VAULT;"


@dataclass(frozen=True)
class Unsupported:
    """A host Playbot cannot run, and the connection that says so."""

    hostname: str
    connection: str


@dataclass
class Inventory:
    """What `read_inventory` found: servers and groups to import, hosts left out."""

    source: Path
    servers: list[ServerSpec]
    groups: list[GroupSpec]
    skipped: list[Unsupported] = field(default_factory=list)


@dataclass
class ImportReport:
    """What `import_servers` / `import_inventory` did, by hostname. `updated` maps a host to
    the columns changed; `inactive` lists deactivated servers that were updated but left
    deactivated; `groups` is the server groups' part (None for servers alone)."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)
    groups: GroupReport | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or (self.groups and self.groups.changed))


def read_inventory(
    path: str | Path,
    *,
    default_environment: str | Environment | None = None,
    vault_password_file: str | Path | None = None,
    skip_unsupported: bool = False,
) -> Inventory:
    """The hosts and groups of the inventory at `path` (file or directory), as Ansible reads
    it (see the module docstring for every rule).

    Raises InvalidInput when the inventory cannot be read, has no hosts, or any host or group
    cannot be imported: every problem listed, hosts and groups named, nothing written.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise InvalidInput(f"Inventory {source} does not exist.")
    source = source.resolve()
    fallback = parse_environment(default_environment) if default_environment else None
    password = _password_file(vault_password_file)
    _refuse_scripts(source)
    vaulted_files = _vaulted_files(source)
    if vaulted_files and password is None:
        raise InvalidInput(
            f"Inventory {source} has vault-encrypted variable files "
            f"({', '.join(_relative(f, source) for files in vaulted_files.values() for f in files)}"
            "): give their password with --vault-password-file FILE.")
    merged_doc, export_doc = _ansible_inventory_twice(source, password)
    structure = _Structure(export_doc)
    if not structure.hosts:
        raise InvalidInput(f"Inventory {source} lists no hosts.")
    vault = _Vault(password)
    hidden = _hide_vaulted_files(vaulted_files, vault, structure)
    merged = _hostvars(merged_doc)

    problems: list[str] = []
    specs: list[ServerSpec] = []
    skipped: list[Unsupported] = []
    seen: dict[str, str] = {}
    for name in sorted(structure.hosts):
        if name.lower() in seen:
            problems.append(f"{name}: the inventory also has `{seen[name.lower()]}`; hostnames "
                            "must differ by more than letter case.")
            continue
        seen[name.lower()] = name
        try:
            variables = _column_values(name, merged.get(name, {}), structure, vault)
            connection = _connection_value(variables)
            if connection is None:
                skipped.append(Unsupported(name, str(variables.get("ansible_connection"))))
                continue
            own = {k: v for k, v in structure.host_vars(name).items() if k not in COLUMN_VARS}
            own.update(hidden.get(("host", name), {}))
            specs.append(host_spec(name, structure.groups_of(name), variables,
                                   default_environment=fallback, host_vars=own))
        except InvalidInput as exc:
            problems.append(f"{name}: {exc}")
    if skipped and not skip_unsupported:
        problems.append(
            f"{len(skipped)} host{'s' if len(skipped) > 1 else ''} Playbot cannot run (it runs "
            "hosts over ssh or local): "
            + ", ".join(f"{u.hostname} ({u.connection})" for u in skipped)
            + "; pass --skip-unsupported to import the others without them.")
    left_out = {u.hostname for u in skipped}
    groups: list[GroupSpec] = []
    for group in structure.group_specs(left_out, hidden):
        try:
            server_groups.check_group_name(group.name)
            groups.append(group)
        except InvalidInput as exc:
            problems.append(f"group {exc}")
    lowered: dict[str, str] = {}
    for group in groups:
        other = lowered.setdefault(group.name.lower(), group.name)
        if other != group.name:
            problems.append(f"group `{group.name}`: the inventory also has the group `{other}`; "
                            "group names must differ by more than letter case.")
    if problems:
        raise InvalidInput(f"Inventory {source} cannot be imported, nothing was changed "
                           f"({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  - "
                           + "\n  - ".join(problems))
    if not specs:
        raise InvalidInput(f"Inventory {source} has no host Playbot can run.")
    return Inventory(source=source, servers=specs, groups=groups, skipped=skipped)


def parse_inventory(
    path: str | Path, *, default_environment: str | Environment | None = None,
    vault_password_file: str | Path | None = None, skip_unsupported: bool = False,
) -> list[ServerSpec]:
    """The server specs of `read_inventory(path, ...)`, sorted by hostname."""
    return read_inventory(path, default_environment=default_environment,
                          vault_password_file=vault_password_file,
                          skip_unsupported=skip_unsupported).servers


def host_spec(
    name: str,
    groups: Iterable[str],
    variables: Mapping[str, Any],
    *,
    default_environment: Environment | None = None,
    host_vars: Mapping[str, Any] | None = None,
) -> ServerSpec:
    """One inventory host as a server spec (see the module docstring for the mapping).

    groups: every group the host belongs to, parents included; variables: its merged
    variables (vault already decrypted where Playbot reads them). Raises InvalidInput.
    """
    group_list = [g for g in groups if g not in IGNORED_GROUPS]
    environment = _environment(group_list, variables, default_environment)
    env_names = {e.value for e in Environment}
    tags = [g for g in group_list if g.lower() not in env_names and TAG_PATTERN.match(g)]
    connection = _connection_value(variables)
    if connection is None:
        raise InvalidInput(f"ansible_connection `{variables.get('ansible_connection')}` is not "
                           "supported: Playbot runs hosts over ssh or local.")
    key_path = _text(_first(variables, _KEY_VARS), "ansible_ssh_private_key_file")
    spec = check_spec(
        name,
        ip_address=_text(_first(variables, _ADDRESS_VARS), "ansible_host"),
        ssh_port=_port(_first(variables, _PORT_VARS)),
        ssh_user=_text(_first(variables, _USER_VARS), "ansible_user"),
        ssh_key_path=key_path,
        environment=environment,
        tags=sorted(tags, key=str.lower),
        connection=connection,
        host_vars=host_vars,
    )
    if spec.ssh_key_path and spec.connection == "ssh":
        check_key_file(spec.ssh_key_path)
    return spec


def import_inventory(
    session: Session,
    found: Inventory,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> ImportReport:
    """Write the servers, then the groups of `found` (see `import_servers` and
    `core.server_groups.sync_groups`): one transaction, the caller's; flushes, never commits.
    """
    report = import_servers(session, found.servers, actor=actor, origin=origin,
                            request=request)
    imported: dict[str, Server] = {}
    for spec in found.servers:
        server = find_server(session, spec.hostname)
        assert server is not None
        imported[spec.hostname] = server
    report.groups = server_groups.sync_groups(session, found.groups, imported, actor=actor,
                                              origin=origin, request=request)
    return report


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


# --- asking Ansible ----------------------------------------------------------------------


def _bin(name: str) -> str:
    """`name` from the venv Playbot runs in (beside sys.executable), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _run(args: list[str], *, workdir: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run an Ansible command in a scrubbed environment; InvalidInput on timeout."""
    (workdir / "ansible.cfg").touch()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"), "ANSIBLE_HOME": str(workdir / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "ANSIBLE_INVENTORY_ENABLED": ENABLED_PLUGINS, "ANSIBLE_VARS_ENABLED": "host_group_vars",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "True", "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    try:
        return subprocess.run(args, cwd=workdir, env=env, input=stdin, capture_output=True,
                              text=True, timeout=INVENTORY_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"`{Path(args[0]).name}` took more than {INVENTORY_TIMEOUT} s on "
                           "the inventory; nothing was changed.") from None
    except OSError as exc:
        raise InvalidInput(f"Cannot run `{args[0]}`: {exc.strerror}.") from None


def _ansible_inventory_twice(source: Path, password: Path | None) -> tuple[dict, dict]:
    """`ansible-inventory --list` and `--list --export` of `source`, run side by side."""
    base = [_bin("ansible-inventory"), "-i", str(source), "--list"]
    if password is not None:
        base += ["--vault-password-file", str(password)]
    with tempfile.TemporaryDirectory(prefix="playbot-inventory-") as tmp:
        dirs = [Path(tmp) / "list", Path(tmp) / "export"]
        for d in dirs:
            d.mkdir()
        with ThreadPoolExecutor(max_workers=2) as pool:
            merged = pool.submit(_run, base, workdir=dirs[0])
            export = pool.submit(_run, [*base, "--export"], workdir=dirs[1])
            results = [merged.result(), export.result()]
    docs = []
    for result in results:
        if result.returncode != 0:
            raise InvalidInput(f"Cannot read the inventory {source} with Ansible: "
                               f"{_ansible_error(result.stderr, source)}")
        try:
            docs.append(json.loads(result.stdout))
        except ValueError:
            raise InvalidInput(f"Cannot read the inventory {source}: ansible-inventory printed "
                               "no JSON.") from None
    return docs[0], docs[1]


def _ansible_error(stderr: str, source: Path) -> str:
    """The reason Ansible gave, in a line or two (its plugin failures, else its errors)."""
    reasons: list[str] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        text = line.strip()
        if "Failed to parse" in text and "plugin:" in text:
            plugin = text.split("'")[1].rsplit(".", 1)[-1] if "'" in text else "plugin"
            reasons.append(f"{plugin} plugin: {text.split('plugin:', 1)[1].strip()}")
        elif text.startswith(("[ERROR]:", "ERROR!", "ERROR:")):
            errors.append(text.split(":", 1)[1].strip() if text.startswith("[") else
                          text.split(" ", 1)[-1].strip())
    if any("no vault secrets" in e for e in errors):
        return "it holds vault-encrypted data: give the password with --vault-password-file."
    if any("Decryption failed" in e for e in errors):
        return "the vault password does not decrypt it (Decryption failed)."
    found = reasons or errors or [stderr.strip().splitlines()[-1] if stderr.strip() else
                                  "ansible-inventory failed"]
    return "; ".join(dict.fromkeys(found))[:2000]


def _password_file(value: str | Path | None) -> Path | None:
    if value is None or not str(value).strip():
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise InvalidInput(f"Vault password file {path} does not exist or is not a file.")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"Vault password file {path} is not readable by this process.")
    return path.resolve()


def _refuse_scripts(source: Path) -> None:
    """Refuse executable inventory scripts (ansible-inventory would run them)."""
    candidates = [source] if source.is_file() else [
        p for p in sorted(source.iterdir()) if p.is_file() and p.name not in (
            "group_vars", "host_vars")]
    for candidate in candidates:
        try:
            mode = candidate.stat().st_mode
            with candidate.open("rb") as handle:
                head = handle.read(2)
        except OSError:
            continue
        if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) and head == b"#!":
            raise InvalidInput(
                f"Inventory {candidate} is an executable inventory script: Playbot never runs "
                f"one. Convert it first (`ansible-inventory -i {candidate} --list --yaml > "
                "hosts.yml`), review the file, then import it.")


# --- what ansible-inventory printed -------------------------------------------------------


def _hostvars(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    meta = doc.get("_meta") or {}
    return {str(h): dict(v or {}) for h, v in (meta.get("hostvars") or {}).items()}


class _Structure:
    """The `--export` document: groups (own vars, children, direct hosts) and hosts' own vars."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self._own = _hostvars(doc)
        self.groups: dict[str, dict[str, Any]] = {
            str(name): dict(body or {}) for name, body in doc.items() if name != "_meta"}
        self.hosts: set[str] = set(self._own)
        self._parents: dict[str, set[str]] = {}
        self._direct: dict[str, set[str]] = {}
        for name, body in self.groups.items():
            for child in body.get("children") or []:
                self._parents.setdefault(str(child), set()).add(name)
            for host in body.get("hosts") or []:
                self.hosts.add(str(host))
                self._direct.setdefault(str(host), set()).add(name)

    def host_vars(self, host: str) -> dict[str, Any]:
        return dict(self._own.get(host, {}))

    def set_host_vars(self, host: str, values: dict[str, Any]) -> None:
        self._own[host] = values

    def groups_of(self, host: str) -> list[str]:
        """Every group `host` is in, parents included, sorted."""
        seen: set[str] = set()
        todo = list(self._direct.get(host, ()))
        while todo:
            group = todo.pop()
            if group not in seen:
                seen.add(group)
                todo.extend(self._parents.get(group, ()))
        return sorted(seen)

    def where_set(self, host: str, name: str) -> str:
        """Where the variable `name` of `host` comes from, in words."""
        if name in self._own.get(host, {}):
            return "set on the host"
        holders = [g for g in self.groups_of(host) + ["all"]
                   if name in (self.groups.get(g, {}).get("vars") or {})]
        return f"from group {holders[0]}" if holders else "set in the inventory"

    def group_specs(self, left_out: set[str],
                    hidden: Mapping[tuple[str, str], dict[str, Any]]) -> list[GroupSpec]:
        specs = []
        for name in sorted(self.groups):
            if name == "ungrouped":
                continue
            body = self.groups[name]
            variables = dict(body.get("vars") or {})
            variables.update(hidden.get(("group", name), {}))
            if name == "all":
                specs.append(GroupSpec(name=name, variables=variables))
                continue
            specs.append(GroupSpec(
                name=name, variables=variables,
                children=tuple(sorted(str(c) for c in body.get("children") or [])),
                hosts=tuple(sorted(str(h) for h in body.get("hosts") or []
                                   if str(h) not in left_out))))
        return specs


# --- vault -------------------------------------------------------------------------------


class _Vault:
    """Decrypts what Playbot must read, with the operator's password file (cached)."""

    def __init__(self, password: Path | None) -> None:
        self.password = password
        self._plain: dict[str, str] = {}

    def decrypt(self, ciphertext: str, what: str) -> str:
        if self.password is None:
            raise InvalidInput(f"{what} is vault-encrypted: give the password with "
                               "--vault-password-file FILE.")
        if ciphertext not in self._plain:
            with tempfile.TemporaryDirectory(prefix="playbot-vault-") as tmp:
                result = _run([_bin("ansible-vault"), "decrypt", "--vault-password-file",
                               str(self.password), "--output", "-", "-"],
                              workdir=Path(tmp), stdin=ciphertext)
            if result.returncode != 0:
                raise InvalidInput(f"{what} cannot be decrypted with the given vault password.")
            self._plain[ciphertext] = result.stdout
        return self._plain[ciphertext]


def _column_values(host: str, merged: Mapping[str, Any], structure: _Structure,
                   vault: _Vault) -> dict[str, Any]:
    """The host's merged variables with the ones Playbot reads decrypted."""
    values = dict(merged)
    problems = []
    for name in sorted(COLUMN_VARS & set(values)):
        if not is_vaulted(values[name]):
            continue
        what = (f"{name} ({structure.where_set(host, name)}; Playbot needs it for "
                f"{_PURPOSE[name]})")
        try:
            values[name] = vault.decrypt(values[name][VAULT_KEY], what)
        except InvalidInput as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidInput(" ".join(problems))
    return values


def _vaulted_files(source: Path) -> dict[tuple[str, str], list[Path]]:
    """Vault-encrypted files under the `group_vars/` and `host_vars/` Ansible reads for
    `source`, by ("group"|"host", name), in Ansible's load order."""
    base = source if source.is_dir() else source.parent
    found: dict[tuple[str, str], list[Path]] = {}
    for kind, folder in (("group", "group_vars"), ("host", "host_vars")):
        root = base / folder
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            files = sorted(p for p in entry.rglob("*") if p.is_file()) if entry.is_dir() else [
                entry]
            name = entry.name if entry.is_dir() else _entity_name(entry)
            vaulted = [f for f in files if _is_vault_file(f)]
            if vaulted:
                found[(kind, name)] = vaulted
    return found


def _entity_name(path: Path) -> str:
    return path.stem if path.suffix.lower() in (".yml", ".yaml", ".json") else path.name


def _is_vault_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_VAULT_HEADER)).decode("ascii", "replace") == _VAULT_HEADER
    except OSError:
        return False


def _hide_vaulted_files(files: Mapping[tuple[str, str], list[Path]], vault: _Vault,
                        structure: _Structure) -> dict[tuple[str, str], dict[str, Any]]:
    """Take the variables of vaulted files out of what is stored; return, by entity, the
    `__playbot_vault_files` entry that replaces them."""
    hidden: dict[tuple[str, str], dict[str, Any]] = {}
    for (kind, name), paths in files.items():
        names: set[str] = set()
        texts: list[str] = []
        for path in paths:
            text = path.read_text(encoding="utf-8")
            texts.append(text)
            plain = vault.decrypt(text, f"Vars file {path}")
            names.update(_top_level_names(plain, path))
        if kind == "group" and name in structure.groups:
            body = structure.groups[name]
            body["vars"] = {k: v for k, v in (body.get("vars") or {}).items() if k not in names}
        elif kind == "host" and name in structure.hosts:
            structure.set_host_vars(name, {k: v for k, v in structure.host_vars(name).items()
                                           if k not in names})
        hidden[(kind, name)] = {VAULT_FILES_KEY: texts}
    return hidden


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's tags (`!vault`, `!unsafe`) as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_TolerantLoader.add_multi_constructor("!", _any_tag)


def _top_level_names(text: str, path: Path) -> set[str]:
    try:
        data = yaml.load(text, Loader=_TolerantLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        raise InvalidInput(f"Vars file {path}, decrypted, is not YAML.") from None
    return {str(k) for k in data} if isinstance(data, Mapping) else set()


def _relative(path: Path, source: Path) -> str:
    base = source if source.is_dir() else source.parent
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


# --- host variables -> columns -----------------------------------------------------------


def _environment(groups: list[str], variables: Mapping[str, Any],
                 default: Environment | None) -> Environment:
    env_names = {e.value for e in Environment}
    found = sorted({g.lower() for g in groups if g.lower() in env_names})
    declared = variables.get(ENVIRONMENT_VAR)
    if declared is not None and str(declared).strip():
        try:
            chosen = parse_environment(str(declared))
        except InvalidInput as exc:
            raise InvalidInput(f"{ENVIRONMENT_VAR}: {exc}") from None
        if Environment.production.value in found and chosen != Environment.production:
            raise InvalidInput(
                f"it is in the group production but {ENVIRONMENT_VAR} says `{chosen.value}`; "
                "Playbot never takes a server out of production silently (that would skip "
                "four-eyes approval): take it out of the production group, or set "
                f"{ENVIRONMENT_VAR}=production for it.")
        return chosen
    if len(found) > 1:
        raise InvalidInput(f"it is in the groups {' and '.join(found)}; a server has one "
                           f"environment (set the host var {ENVIRONMENT_VAR} to choose).")
    if found:
        return Environment(found[0])
    if default is not None:
        return default
    raise InvalidInput("no environment: put it in a `production`, `staging` or `development` "
                       f"group, set the host var {ENVIRONMENT_VAR}, or pass --default-env.")


def _connection_value(variables: Mapping[str, Any]) -> str | None:
    """"ssh" or "local", or None when Playbot cannot run the host's connection."""
    value = variables.get("ansible_connection")
    if value is None or not str(value).strip():
        return "ssh"
    text = str(value).strip().lower()
    if text in LOCAL_CONNECTIONS:
        return "local"
    if text in SSH_CONNECTIONS:
        return "ssh"
    return None


def _first(variables: Mapping[str, Any], names: Sequence[str]) -> Any:
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
