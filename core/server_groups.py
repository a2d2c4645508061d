"""Server groups (seed v1.2): Ansible's inventory groups kept in the database.

A group has variables, child groups (a group may have several parents, as in Ansible) and
direct member servers. A server is *in* a group when it is a member of that group or of
any of its descendants. Groups are filled by `playbot servers import` and target
`group:<name>`; a run's inventory holds every group its servers are in, with its variables
(`core.run_inventory`).

Reads only here; writing groups is the import's job. Functions never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import UnknownServer
from core.suggestions import closest
from db.models import Server, ServerGroup, ServerGroupChild, ServerGroupMember


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
