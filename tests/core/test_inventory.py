"""Importing an existing Ansible inventory: INI and YAML read by ansible-core itself, groups
as environment and tags, connection variables as columns, created/updated/unchanged."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from core import inventory, servers
from core.errors import InvalidInput
from db.models import AuditLog, Environment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

INI = """
[production]
db-01 ansible_host=10.0.0.9 ansible_port=2222 ansible_user=deploy

[staging]
web-02

[web]
web-01 ansible_host=web-01.internal ansible_ssh_private_key_file=KEYFILE
web-02

[development]
web-01

[eu:children]
web

[web:vars]
ansible_user=www

[local]
box ansible_connection=local playbot_environment=development
"""

YAML = """
all:
  vars:
    ansible_user: ops
  children:
    production:
      hosts:
        api-01:
          ansible_host: 10.1.0.1
          ansible_port: 2200
    api:
      hosts:
        api-01:
        api-02:
          playbot_environment: staging
          ansible_connection: ssh
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    key = tmp_path / "web.key"
    if "KEYFILE" in text and not key.exists():
        key.write_text("not a real key\n")
        key.chmod(0o600)
    path.write_text(textwrap.dedent(text).replace("KEYFILE", str(key)))
    return path


def by_name(specs) -> dict:
    return {spec.hostname: spec for spec in specs}


# parsing ------------------------------------------------------------------------------


def test_an_ini_inventory_gives_environment_tags_and_connection_columns(tmp_path):
    hosts = by_name(inventory.parse_inventory(write(tmp_path, "hosts.ini", INI)))

    assert sorted(hosts) == ["box", "db-01", "web-01", "web-02"]
    db = hosts["db-01"]
    assert (db.environment, db.ip_address, db.ssh_port, db.ssh_user, db.tags) == (
        Environment.production, "10.0.0.9", 2222, "deploy", [])
    web = hosts["web-01"]
    assert web.environment == Environment.development
    assert web.ip_address == "web-01.internal"  # ansible_host may be a DNS name
    assert web.ssh_key_path == str(tmp_path / "web.key")
    assert web.ssh_user == "www"  # from [web:vars]
    assert web.tags == ["eu", "web"]  # parent groups count too
    assert hosts["web-02"].environment == Environment.staging
    box = hosts["box"]
    assert (box.connection, box.environment, box.tags) == ("local", Environment.development,
                                                           ["local"])


def test_a_yaml_inventory_is_read_the_same_way(tmp_path):
    hosts = by_name(inventory.parse_inventory(write(tmp_path, "hosts.yml", YAML)))

    api1, api2 = hosts["api-01"], hosts["api-02"]
    assert (api1.environment, api1.ip_address, api1.ssh_port, api1.ssh_user, api1.tags) == (
        Environment.production, "10.1.0.1", 2200, "ops", ["api"])
    assert (api2.environment, api2.connection, api2.ssh_port) == (Environment.staging, "ssh", 22)


def test_group_vars_and_host_vars_beside_the_inventory_are_applied(tmp_path):
    path = write(tmp_path, "hosts", "[development]\nweb-01\nweb-02\n")
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars", "development.yml", "ansible_user: from-group-vars\n")
    (tmp_path / "host_vars").mkdir()
    write(tmp_path / "host_vars", "web-02.yml", "ansible_port: 2202\n")

    hosts = by_name(inventory.parse_inventory(path))

    assert hosts["web-01"].ssh_user == hosts["web-02"].ssh_user == "from-group-vars"
    assert (hosts["web-01"].ssh_port, hosts["web-02"].ssh_port) == (22, 2202)


def test_ranges_in_an_ini_inventory_expand_to_hosts(tmp_path):
    path = write(tmp_path, "hosts.ini", "[staging]\nweb[01:03].example.com\n")

    assert [s.hostname for s in inventory.parse_inventory(path)] == [
        "web01.example.com", "web02.example.com", "web03.example.com"]


def test_the_shipped_example_inventory_has_local_and_prod_local(tmp_path):
    hosts = by_name(inventory.parse_inventory(EXAMPLES / "inventory.yml"))

    assert sorted(hosts) == ["local", "prod-local"]
    assert hosts["local"].environment == Environment.development
    assert hosts["prod-local"].environment == Environment.production
    assert {h.connection for h in hosts.values()} == {"local"}
    assert {h.ip_address for h in hosts.values()} == {"127.0.0.1"}


def test_a_host_without_environment_is_refused_unless_a_default_is_given(tmp_path):
    path = write(tmp_path, "hosts.ini", "[web]\nweb-01\n")

    with pytest.raises(InvalidInput) as error:
        inventory.parse_inventory(path)
    assert "web-01: no environment" in str(error.value)
    assert "--default-env" in str(error.value)

    [spec] = inventory.parse_inventory(path, default_environment="staging")
    assert (spec.environment, spec.tags) == (Environment.staging, ["web"])


@pytest.mark.parametrize(("text", "message"), [
    ("[production]\nh1\n[staging]\nh1\n", "h1: it is in the groups production and staging"),
    ("[web]\nh1 playbot_environment=qa\n", "h1: playbot_environment: Unknown environment `qa`"),
    ("[development]\nh1 ansible_connection=winrm\n", "Playbot cannot run (it runs hosts over "
                                                     "ssh or local): h1 (winrm)"),
    ("[development]\nh1 ansible_port=ssh\n", "h1: Invalid SSH port `ssh`"),
    ("[development]\nh1 ansible_host='{{ lookup(\"env\", \"X\") }}'\n", "h1: Invalid address"),
])
def test_a_host_that_cannot_be_imported_is_named_with_the_reason(tmp_path, text, message):
    with pytest.raises(InvalidInput, match="nothing was changed") as error:
        inventory.parse_inventory(write(tmp_path, "hosts.ini", text))

    assert message in str(error.value)


def test_playbot_environment_wins_over_the_groups_except_to_leave_production(tmp_path):
    # The issue: `production` + playbot_environment=staging came in as staging, silently.
    staging = write(tmp_path, "a.ini", "[development]\nh1 playbot_environment=staging\n")
    leaving = write(tmp_path, "b.ini", "[production]\nh1 playbot_environment=staging\n")

    [spec] = inventory.parse_inventory(staging)
    with pytest.raises(InvalidInput) as error:
        inventory.parse_inventory(leaving)

    assert spec.environment == Environment.staging
    assert "h1: it is in the group production but playbot_environment says `staging`" in str(
        error.value)


def test_an_unreadable_inventory_is_refused_clearly(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        inventory.parse_inventory(tmp_path / "missing.ini")
    with pytest.raises(InvalidInput, match="Cannot read the inventory .*ini plugin"):
        inventory.parse_inventory(write(tmp_path, "bad.ini", "[web]\nh1 ansible_port\n"))
    with pytest.raises(InvalidInput, match="lists no hosts"):
        inventory.parse_inventory(write(tmp_path, "empty.ini", "[web]\n"))


def test_yaml_without_an_extension_is_read_as_ansible_reads_it(tmp_path):
    [spec] = inventory.parse_inventory(write(tmp_path, "hosts", "all:\n  hosts:\n    h1:\n"),
                                       default_environment="staging")

    assert spec.hostname == "h1"


def test_an_executable_inventory_is_read_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = write(tmp_path, "hosts", f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    path.chmod(0o755)

    with pytest.raises(InvalidInput):
        inventory.parse_inventory(path)

    assert not marker.exists()


# importing (both databases) -------------------------------------------------------------


def test_import_creates_then_reports_unchanged_then_updates(session, tmp_path):
    path = write(tmp_path, "hosts.ini", INI)

    first = inventory.import_servers(session, inventory.parse_inventory(path),
                                     origin={"via": "cli"})
    session.commit()
    again = inventory.import_servers(session, inventory.parse_inventory(path))

    assert first.created == ["box", "db-01", "web-01", "web-02"]
    assert again.unchanged == ["box", "db-01", "web-01", "web-02"] and not again.changed

    write(tmp_path, "hosts.ini", INI.replace("ansible_port=2222", "ansible_port=2200")
          + "\n[prod:children]\nlocal\n")
    third = inventory.import_servers(session, inventory.parse_inventory(path))
    session.commit()

    assert third.updated == {"db-01": ["ssh_port"], "box": ["tags"]}
    assert servers.get_server(session, "db-01").ssh_port == 2200
    assert servers.get_server(session, "box").tags == ["local", "prod"]
    actions = [(a.action, a.resource_id) for a in session.scalars(
        select(AuditLog).order_by(AuditLog.id))]
    assert actions.count(("server.import", "db-01")) == 1
    assert ("server.update", "db-01") in actions and ("server.update", "box") in actions


def test_import_keeps_a_deactivated_server_deactivated_and_says_so(session, tmp_path):
    servers.add_server(session, "web-01", description="kept")
    servers.deactivate_server(session, "web-01")
    path = write(tmp_path, "hosts.ini", "[development]\nweb-01 ansible_host=10.0.0.1\n")

    report = inventory.import_servers(session, inventory.parse_inventory(path))

    server = servers.get_server(session, "web-01")
    assert report.updated == {"web-01": ["ip_address"]}
    assert report.inactive == ["web-01"]
    assert (server.is_active, server.description) == (False, "kept")


def test_environments_come_through_nested_children_as_in_the_docs_yaml_example():
    # given intro_inventory's YAML: production > prod > east, staging > test > west
    found = inventory.read_inventory(Path(__file__).resolve().parents[1] / "inventories"
                                     / "docs_yaml.yml")

    hosts = by_name(found.servers)
    groups = {g.name: g for g in found.groups}

    assert {h: s.environment.value for h, s in hosts.items()} == {
        "foo.example.com": "production", "one.example.com": "production",
        "bar.example.com": "staging", "two.example.com": "staging",
        "mail.example.com": "staging"}
    assert hosts["foo.example.com"].tags == ["east", "prod", "webservers"]
    assert groups["all"].variables == {"ntp_server": "ntp.atlanta.example.com"}
    assert (groups["prod"].children, groups["east"].hosts) == (
        ("east",), ("foo.example.com", "one.example.com"))
    assert hosts["two.example.com"].host_vars == {}  # its connection vars are columns
