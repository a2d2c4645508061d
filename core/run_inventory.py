"""The inventory of one run: every target host with its connection, variables and groups.

Built from the `servers` rows of the run's jobs and the server groups they are in, limited
to those hosts, so a playbook sees what `ansible-playbook -i <inventory> --limit <targets>`
would show it:

- each host: its connection columns (`ansible_host` = ip_address, `ansible_port`,
  `ansible_user`, `ansible_ssh_private_key_file`; or `ansible_connection: local` with the
  worker's interpreter) and its `host_vars` (from an import or the CLI, never from chat);
- its groups: every tag, its environment, and every server group it is in (directly or
  through children), with the group's variables and children; names Ansible accepts are
  kept as they are (`web-servers`, `db.eu`);
- `all` carries the variables of the imported `all` group.

Vaulted values stay as the import stored them: inline ones as `{"__ansible_vault": ...}`
(Ansible decrypts them when a task uses them), vault-encrypted vars files as their
ciphertext under `__playbot_vault_files`, returned apart as files to write beside the
inventory (`group_vars/<group>/`, `host_vars/<host>/`).

Plain data only: no Ansible import here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from core.server_groups import all_variables, inventory_groups
from db.models import Server

VAULT_FILES_VAR = "__playbot_vault_files"
SPECIAL_GROUPS = ("all", "ungrouped")


@dataclass
class RunInventory:
    """The inventory (JSON-able) and the vault-encrypted vars files to write beside it,
    by path relative to the inventory's directory."""

    data: dict[str, Any]
    vault_files: dict[str, str] = field(default_factory=dict)


def connection_vars(server: Server, *, local_python: str) -> dict[str, Any]:
    """The connection variables of one server row."""
    if server.connection == "local":
        return {"ansible_connection": "local", "ansible_python_interpreter": local_python}
    found: dict[str, Any] = {}
    if server.ip_address:
        found["ansible_host"] = server.ip_address
    if server.ssh_port:
        found["ansible_port"] = int(server.ssh_port)
    if server.ssh_user:
        found["ansible_user"] = server.ssh_user
    if server.ssh_key_path:
        found["ansible_ssh_private_key_file"] = server.ssh_key_path
    return found


def build_run_inventory(session: Session, servers: Sequence[Server], *,
                        local_python: str) -> RunInventory:
    """The inventory of a run over `servers` (see the module docstring)."""
    files: dict[str, str] = {}
    hosts: dict[str, dict[str, Any]] = {}
    for server in servers:
        variables = dict(server.host_vars or {})
        _take_vault_files(variables, f"host_vars/{server.hostname}", files)
        # the row's columns win over same-named host vars: they are what Playbot shows
        hosts[server.hostname] = {**variables,
                                  **connection_vars(server, local_python=local_python)}
    children: dict[str, dict[str, Any]] = {}

    def group(name: str) -> dict[str, Any]:
        return children.setdefault(name, {})

    names = {s.id: s.hostname for s in servers}
    for server in servers:
        for name in [*(server.tags or []), server.environment.value]:
            if name in SPECIAL_GROUPS:
                continue
            group(name).setdefault("hosts", {})[server.hostname] = None
    for view in inventory_groups(session, [s.id for s in servers]):
        if view.name in SPECIAL_GROUPS:
            continue
        entry = group(view.name)
        variables = dict(view.variables)
        _take_vault_files(variables, f"group_vars/{view.name}", files)
        if variables:
            entry["vars"] = variables
        for member in sorted(view.members):
            entry.setdefault("hosts", {})[names[member]] = None
        for child in view.children:
            entry.setdefault("children", {})[child] = {}
    top_vars = all_variables(session)
    _take_vault_files(top_vars, "group_vars/all", files)
    root: dict[str, Any] = {"hosts": hosts}
    if top_vars:
        root["vars"] = top_vars
    if children:
        root["children"] = children
    return RunInventory(data={"all": root}, vault_files=files)


def _take_vault_files(variables: dict[str, Any], directory: str, files: dict[str, str]) -> None:
    texts = variables.pop(VAULT_FILES_VAR, None) or []
    for index, text in enumerate(texts if isinstance(texts, list) else [texts], start=1):
        files[f"{directory}/playbot-vault-{index:02d}.yml"] = str(text)
