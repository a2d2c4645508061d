"""Server groups written by an import (`core.server_groups.sync_groups`) and read back:
variables, children with several parents, membership scoped to the import, audit rows that
name variables but never their values, names a `hosts:` pattern can use."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import server_groups, servers
from core.errors import InvalidInput
from core.server_groups import GroupSpec
from db.models import AuditLog, ServerGroup


def hosts(session, *names):
    return {n: servers.add_server(session, n) for n in names}


def members(session, name):
    return [s.hostname for s in server_groups.servers_in_group(session, name)]


def test_an_import_creates_groups_with_variables_children_and_members(session):
    imported = hosts(session, "web-01", "db-01")
    specs = [GroupSpec("all", {"ntp": "pool"}),
             GroupSpec("web", {"http_port": 80}, hosts=("web-01",)),
             GroupSpec("db", {}, hosts=("db-01",)),
             GroupSpec("eu", {"region": "eu"}, children=("db", "web")),
             GroupSpec("backup", {}, children=("db",))]

    report = server_groups.sync_groups(session, specs, imported)

    assert sorted(report.created) == ["all", "backup", "db", "eu", "web"]
    assert members(session, "eu") == ["db-01", "web-01"]
    assert members(session, "backup") == ["db-01"]  # a group may have several parents
    assert server_groups.all_variables(session) == {"ntp": "pool"}
    views = {v.name: v for v in server_groups.inventory_groups(session, [imported["db-01"].id])}
    assert sorted(views) == ["backup", "db", "eu"]
    assert views["eu"].variables == {"region": "eu"}


def test_a_re_import_changes_only_its_own_servers_memberships(session):
    imported = hosts(session, "web-01", "web-02")
    by_hand = servers.add_server(session, "web-09")
    server_groups.sync_groups(session, [GroupSpec("web", hosts=("web-01", "web-02"))], imported)
    server_groups.sync_groups(session, [GroupSpec("web", hosts=("web-09",))], {"web-09": by_hand})

    report = server_groups.sync_groups(
        session, [GroupSpec("web", {"secret_token": "abc"}, hosts=("web-01",))], imported)

    assert members(session, "web") == ["web-01", "web-09"]
    assert report.updated == {"web": ["members", "variables"]}
    row = session.scalars(select(AuditLog).where(AuditLog.action == "server_group.update")
                          .order_by(AuditLog.id.desc())).first()
    assert row.details["changes"] == {"variables": {"added": ["secret_token"]},
                                      "members": {"removed": ["web-02"]}}
    assert "abc" not in str(row.details)


def test_a_group_gone_from_the_inventory_is_deleted_once_empty_and_kept_otherwise(session):
    imported = hosts(session, "web-01")
    other = servers.add_server(session, "db-01")
    server_groups.sync_groups(session, [GroupSpec("old", hosts=("web-01",)),
                                        GroupSpec("shared", hosts=("web-01",))], imported)
    server_groups.sync_groups(session, [GroupSpec("shared", hosts=("db-01",))], {"db-01": other})

    report = server_groups.sync_groups(session, [GroupSpec("web", hosts=("web-01",))], imported)

    assert report.deleted == ["old"]
    assert report.left == {"shared": ["web-01"]}
    assert server_groups.find_group(session, "old") is None
    assert members(session, "shared") == ["db-01"]
    assert [a.resource_id for a in session.scalars(
        select(AuditLog).where(AuditLog.action == "server_group.delete"))] == ["old"]


@pytest.mark.parametrize("name", ["web-servers", "db.eu", "web_01", "Ünternehmen", "123"])
def test_group_names_ansible_accepts_are_kept(name):
    assert server_groups.check_group_name(name) == name


@pytest.mark.parametrize("name", ["web servers", "web:db", "a,b", "!web", "web&db", "web*",
                                  "[web]", "~web", "web?", "", " web"])
def test_group_names_a_hosts_pattern_cannot_use_are_refused_by_name(name):
    with pytest.raises(InvalidInput, match="cannot be used in a `hosts:` pattern"):
        server_groups.check_group_name(name)


def test_nothing_is_written_when_a_group_names_an_unknown_child(session):
    imported = hosts(session, "web-01")

    with pytest.raises(InvalidInput, match="unknown child group"):
        server_groups.sync_groups(session, [GroupSpec("eu", children=("ghost",))], imported)

    assert session.scalars(select(ServerGroup)).first() is None
