"""Server groups (seed v1.2): Ansible's inventory groups kept in the database.

A group has variables, child groups (a group may have several parents, as in Ansible) and
direct member servers. A server is *in* a group when it is a member of that group or of
any of its descendants. Groups are filled by `playbot servers import` and target
`group:<name>`; a run's inventory holds every group its servers are in, with its variables
(`core.run_inventory`).

Writing: `sync_groups` makes the groups match an inventory import (`core.inventory`), in
the caller's transaction, one audit row per group changed:
- a group of the inventory is created ("server_group.create") or updated to it
  ("server_group.update": variables by name, children, members added/removed): its
  variables and its children become exactly the inventory's; its direct members among the
  servers of this import become exactly the inventory's, while members that came from
  elsewhere (another inventory, the CLI) stay;
- a group that is not in the inventory loses its memberships of this import's servers; if
  that leaves it with no member and no child it is deleted ("server_group.delete"), else it
  is kept as it is;
- names are matched case-insensitively (as hostnames are) and checked by
  `check_group_name`. The group `all` holds only variables: Ansible's `all` group, which
  covers every host of a run (`all_variables`).
Audit rows name variables, never their values (they may be secrets or vault ciphertexts).
Functions flush, never commit.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core import audit
from core.audit import RequestInfo
from core.errors import InvalidInput, UnknownServer
from core.suggestions import closest
from db.models import Server, ServerGroup, ServerGroupChild, ServerGroupMember, User

ALL_GROUP = "all"
MAX_GROUP_NAME = 255
# Characters that mean something in a `hosts:` / `--limit` pattern, or that no name has.
_PATTERN_SYNTAX = set(":,!&*?~[]{}()'\"\\/;|<>$=#@^`+%")
GROUP_NAME_RULE = ("letters and digits (any script), `_`, `-` and `.`; no spaces and none of "
                   "`: , ! & * ? ~ [ ] { } ( ) = @ ^ + % ' \" / \\ ; | < > $ #`, which "
                   "`hosts:` patterns give a meaning to; at most 255 characters")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GroupSpec:
    """One group as an inventory says it: its own variables, child group names and direct
    member hostnames."""

    name: str
    variables: dict[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()


@dataclass
class GroupReport:
    """What `sync_groups` did, by group name: `updated` maps a group to what changed
    ("variables", "children", "members")."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    left: dict[str, list[str]] = field(default_factory=dict)  # kept groups: servers taken out

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.left)


@dataclass(frozen=True)
class GroupView:
    """One group as a run's inventory needs it, restricted to some servers.

    members: ids of the given servers directly in the group.
    children: names of child groups that themselves hold some of the given servers.
    """

    id: int
    name: str
    variables: dict[str, Any]
    members: frozenset[int] = field(default_factory=frozenset)
    children: tuple[str, ...] = ()


def find_group(session: Session, name: str) -> ServerGroup | None:
    """The group called `name` (exact, else case-insensitive), or None."""
    wanted = (name or "").strip()
    if not wanted:
        return None
    exact = session.scalar(select(ServerGroup).where(ServerGroup.name == wanted))
    if exact is not None:
        return exact
    return session.scalar(select(ServerGroup).where(func.lower(ServerGroup.name) == wanted.lower()))


def group_names(session: Session) -> list[str]:
    """Every group's name, sorted."""
    return list(session.scalars(select(ServerGroup.name).order_by(ServerGroup.name)))


def descendants(session: Session, group_ids: Iterable[int]) -> set[int]:
    """The given groups and all groups below them (children, grandchildren...)."""
    edges = session.execute(select(ServerGroupChild.parent_id, ServerGroupChild.child_id)).all()
    below: dict[int, list[int]] = {}
    for parent, child in edges:
        below.setdefault(parent, []).append(child)
    return _closure(group_ids, below)


def ancestors(session: Session, group_ids: Iterable[int]) -> set[int]:
    """The given groups and all groups above them (parents, grandparents...)."""
    edges = session.execute(select(ServerGroupChild.parent_id, ServerGroupChild.child_id)).all()
    above: dict[int, list[int]] = {}
    for parent, child in edges:
        above.setdefault(child, []).append(parent)
    return _closure(group_ids, above)


def servers_in_group(session: Session, name: str, *, active_only: bool = True) -> list[Server]:
    """The servers in group `name` (members of it or of its descendants), by hostname.

    Raises UnknownServer, with the closest group names, when there is no such group or it
    holds no (active) server.
    """
    group = find_group(session, name)
    if group is None:
        names = group_names(session)
        raise UnknownServer(f"No server group named `{(name or '').strip()}`.",
                            suggestions=[f"group:{n}" for n in closest(name or "", names)])
    ids = descendants(session, [group.id])
    query = (select(Server).join(ServerGroupMember, ServerGroupMember.server_id == Server.id)
             .where(ServerGroupMember.group_id.in_(ids)).distinct().order_by(Server.hostname))
    if active_only:
        query = query.where(Server.is_active.is_(True))
    found = list(session.scalars(query))
    if not found:
        raise UnknownServer(f"Server group `{group.name}` has no active server.")
    return found


def inventory_groups(session: Session, server_ids: Collection[int]) -> list[GroupView]:
    """Every group the given servers are in (directly or through children), sorted by name,
    each restricted to those servers: its direct members among them and the children that
    lead to them."""
    wanted = set(server_ids)
    if not wanted:
        return []
    memberships = session.execute(
        select(ServerGroupMember.group_id, ServerGroupMember.server_id)
        .where(ServerGroupMember.server_id.in_(wanted))
    ).all()
    direct: dict[int, set[int]] = {}
    for group_id, server_id in memberships:
        direct.setdefault(group_id, set()).add(server_id)
    relevant = ancestors(session, direct)
    if not relevant:
        return []
    edges = session.execute(
        select(ServerGroupChild.parent_id, ServerGroupChild.child_id)
        .where(ServerGroupChild.parent_id.in_(relevant), ServerGroupChild.child_id.in_(relevant))
    ).all()
    groups = {g.id: g for g in session.scalars(
        select(ServerGroup).where(ServerGroup.id.in_(relevant)))}
    children: dict[int, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(groups[child].name)
    return sorted(
        (GroupView(id=g.id, name=g.name, variables=dict(g.variables or {}),
                   members=frozenset(direct.get(g.id, ())),
                   children=tuple(sorted(children.get(g.id, ()))))
         for g in groups.values()),
        key=lambda view: view.name)


def _closure(start: Iterable[int], edges: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(edges.get(node, ()))
    return seen


# --- writing -------------------------------------------------------------------------------


def check_group_name(name: str) -> str:
    """`name` if a group may be called so (GROUP_NAME_RULE: every name Ansible accepts that a
    `hosts:` pattern can name, e.g. `web-servers`, `db.eu`), else InvalidInput naming it."""
    text = name if isinstance(name, str) else str(name)
    bad = (not text or len(text) > MAX_GROUP_NAME or text != text.strip()
           or any(ch in _PATTERN_SYNTAX or ch.isspace() or not ch.isprintable() for ch in text)
           or not all(ch in "_-." or unicodedata.category(ch)[0] in "LNM" for ch in text))
    if bad:
        shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)[:80]
        raise InvalidInput(f"`{shown}` cannot be used in a `hosts:` pattern: a group name "
                           f"uses {GROUP_NAME_RULE}.")
    return text


def all_variables(session: Session) -> dict[str, Any]:
    """The variables of Ansible's `all` group, as the last import left them ({} if none)."""
    group = session.scalar(select(ServerGroup).where(ServerGroup.name == ALL_GROUP))
    return dict(group.variables or {}) if group is not None else {}


def sync_groups(
    session: Session,
    groups: Sequence[GroupSpec],
    imported: Mapping[str, Server],
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> GroupReport:
    """Make the server groups match an import (rules in the module docstring).

    imported: the servers of this import by inventory hostname (their groups are the
    import's to set). Raises InvalidInput for a bad name, a variable that is not plain data,
    or a child or member the import does not know; nothing is half written then as long as
    the caller rolls back.
    """
    report = GroupReport()
    wanted = {g.name: g for g in groups}
    _check_specs(groups, imported)
    scope = {server.id for server in imported.values()}
    by_name: dict[str, ServerGroup] = {}
    existing = {g.name.lower(): g for g in session.scalars(select(ServerGroup))}
    before: dict[str, dict[str, Any]] = {}
    for spec in groups:
        group = existing.get(spec.name.lower())
        if group is None:
            group = ServerGroup(name=spec.name, variables={})
            session.add(group)
            report.created.append(spec.name)
            before[spec.name] = {}
        else:
            before[spec.name] = _state(session, group)
        by_name[spec.name] = group
    session.flush()

    members = _members(session)
    edges = _edges(session)
    for spec in groups:
        group = by_name[spec.name]
        group.name = spec.name  # letter case as the inventory has it now
        if group.variables != spec.variables:
            group.variables = dict(spec.variables)
        want_children = {by_name[c].id for c in spec.children}
        have_children = edges.get(group.id, set())
        for child in have_children - want_children:
            session.execute(delete(ServerGroupChild).where(
                ServerGroupChild.parent_id == group.id, ServerGroupChild.child_id == child))
        for child in want_children - have_children:
            session.add(ServerGroupChild(parent_id=group.id, child_id=child))
        want_members = {imported[h].id for h in spec.hosts}
        have_members = members.get(group.id, set()) & scope
        for server_id in have_members - want_members:
            session.execute(delete(ServerGroupMember).where(
                ServerGroupMember.group_id == group.id, ServerGroupMember.server_id == server_id))
        for server_id in want_members - have_members:
            session.add(ServerGroupMember(group_id=group.id, server_id=server_id))
    session.flush()

    names = {server.id: server.hostname for server in imported.values()}
    for spec in groups:
        group = by_name[spec.name]
        after = _state(session, group)
        if spec.name in report.created:
            _audit(session, actor, "server_group.create", group, origin, request, {
                "variables": sorted(after["variables"]), "children": after["children"],
                "members": after["members"]})
            continue
        changes = _changes(before[spec.name], after)
        if changes:
            report.updated[spec.name] = sorted(changes)
            _audit(session, actor, "server_group.update", group, origin, request,
                   {"changes": changes})
        else:
            report.unchanged.append(spec.name)

    wanted_lower = {n.lower() for n in wanted}
    for group in sorted(existing.values(), key=lambda g: g.name):
        if group.name.lower() in wanted_lower:
            continue
        ours = members.get(group.id, set()) & scope
        if not ours:
            continue
        session.execute(delete(ServerGroupMember).where(
            ServerGroupMember.group_id == group.id, ServerGroupMember.server_id.in_(ours)))
        session.flush()
        removed = sorted(names[i] for i in ours)
        left_members = session.scalar(select(func.count()).select_from(ServerGroupMember)
                                      .where(ServerGroupMember.group_id == group.id))
        left_children = session.scalar(select(func.count()).select_from(ServerGroupChild)
                                       .where(ServerGroupChild.parent_id == group.id))
        if not left_members and not left_children:
            _audit(session, actor, "server_group.delete", group, origin, request,
                   {"members_removed": removed, "reason": "no longer in the inventory"})
            session.delete(group)
            report.deleted.append(group.name)
        else:
            _audit(session, actor, "server_group.update", group, origin, request,
                   {"changes": {"members": {"removed": removed}},
                    "reason": "no longer in the inventory"})
            report.left[group.name] = removed
    session.flush()
    return report


def _check_specs(groups: Sequence[GroupSpec], imported: Mapping[str, Server]) -> None:
    problems: list[str] = []
    known = {g.name for g in groups}
    for spec in groups:
        try:
            check_group_name(spec.name)
        except InvalidInput as exc:
            problems.append(f"group {exc}")
            continue
        unknown = [c for c in spec.children if c not in known]
        strangers = [h for h in spec.hosts if h not in imported]
        if unknown:
            problems.append(f"group `{spec.name}`: unknown child group(s) {', '.join(unknown)}.")
        if strangers:
            problems.append(f"group `{spec.name}`: host(s) not in this import: "
                            f"{', '.join(strangers)}.")
        if spec.name == ALL_GROUP and (spec.children or spec.hosts):
            problems.append("group `all` holds variables only.")
        bad = [k for k in spec.variables if not isinstance(k, str) or not _VARIABLE_NAME.match(k)]
        if bad:
            problems.append(f"group `{spec.name}`: invalid variable name(s) "
                            f"{', '.join(map(str, bad))}.")
        try:
            json.dumps(spec.variables, allow_nan=False)
        except (TypeError, ValueError):
            problems.append(f"group `{spec.name}`: variables must be plain data.")
    if problems:
        raise InvalidInput(" ".join(problems))


def _members(session: Session) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for group_id, server_id in session.execute(
            select(ServerGroupMember.group_id, ServerGroupMember.server_id)):
        found.setdefault(group_id, set()).add(server_id)
    return found


def _edges(session: Session) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for parent, child in session.execute(
            select(ServerGroupChild.parent_id, ServerGroupChild.child_id)):
        found.setdefault(parent, set()).add(child)
    return found


def _state(session: Session, group: ServerGroup) -> dict[str, Any]:
    """A group's variables, child names and member hostnames, as plain values."""
    children = sorted(session.scalars(
        select(ServerGroup.name).join(ServerGroupChild, ServerGroupChild.child_id == ServerGroup.id)
        .where(ServerGroupChild.parent_id == group.id)))
    members = sorted(session.scalars(
        select(Server.hostname).join(ServerGroupMember, ServerGroupMember.server_id == Server.id)
        .where(ServerGroupMember.group_id == group.id)))
    return {"variables": dict(group.variables or {}), "children": children, "members": members}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    old_vars, new_vars = before["variables"], after["variables"]
    diff = {
        "added": sorted(k for k in new_vars if k not in old_vars),
        "removed": sorted(k for k in old_vars if k not in new_vars),
        "changed": sorted(k for k in new_vars if k in old_vars and old_vars[k] != new_vars[k]),
    }
    if any(diff.values()):
        changes["variables"] = {k: v for k, v in diff.items() if v}
    for key in ("children", "members"):
        added = sorted(set(after[key]) - set(before[key]))
        removed = sorted(set(before[key]) - set(after[key]))
        if added or removed:
            changes[key] = {k: v for k, v in (("added", added), ("removed", removed)) if v}
    return changes


def _audit(session: Session, actor: User | None, action: str, group: ServerGroup,
           origin: Mapping[str, Any] | None, request: RequestInfo | None,
           details: Mapping[str, Any]) -> None:
    audit.record(session, user=actor, action=action, resource_type="server_group",
                 resource_id=group.name, details={**(origin or {}), **details},
                 request=request)
