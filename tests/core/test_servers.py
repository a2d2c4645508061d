"""Servers as operators register them: validated, audited, found by environment and tag on
every database (the tags are a JSON column)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import servers
from core.errors import InvalidInput, UnknownServer
from db.models import AuditLog, Environment

CLI = {"via": "cli", "os_user": "tester"}


def audit_rows(session, action: str) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


@pytest.fixture
def fleet(session):
    """web-01 (development; web, eu), web-02 (staging; Web), db-01 (production; db),
    old-01 (development; web, deactivated)."""
    servers.add_server(session, "web-01", ip_address="10.0.0.1", tags=["web", "eu"])
    servers.add_server(session, "web-02", environment="staging", tags=["Web"])
    servers.add_server(session, "db-01", environment="production", tags=["db"], ssh_port=2222,
                       ssh_user="deploy", ssh_key_path="~/.ssh/db")
    servers.add_server(session, "old-01", tags=["web"])
    servers.deactivate_server(session, "old-01")
    session.commit()
    return session


def names(found) -> list[str]:
    return [s.hostname for s in found]


def test_an_added_server_keeps_every_setting_and_the_addition_is_audited(session):
    server = servers.add_server(session, "db-01", ip_address="10.0.0.9", ssh_port="2222",
                                ssh_user="deploy", ssh_key_path="/keys/db", environment="Production",
                                tags=["db", "eu", "DB"], description="primary", origin=CLI)
    session.commit()

    assert (server.ip_address, server.ssh_port, server.ssh_user, server.ssh_key_path) == (
        "10.0.0.9", 2222, "deploy", "/keys/db")
    assert server.environment == Environment.production
    assert server.tags == ["db", "eu"]  # duplicates (any case) dropped
    assert (server.connection, server.is_active) == ("ssh", True)
    [row] = audit_rows(session, "server.add")
    assert (row.resource_id, row.details["environment"], row.details["via"]) == (
        "db-01", "production", "cli")


def test_a_local_server_runs_on_the_worker(session):
    server = servers.add_server(session, "local", connection="local", ip_address="127.0.0.1")

    assert server.connection == "local"


def test_a_hostname_already_registered_is_refused_even_in_other_case(fleet):
    with pytest.raises(InvalidInput, match="`web-01` is already registered"):
        servers.add_server(fleet, "WEB-01")


def test_re_adding_a_deactivated_server_says_how_to_turn_it_back_on(fleet):
    with pytest.raises(InvalidInput, match="playbot servers activate old-01"):
        servers.add_server(fleet, "old-01")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hostname": "bad host"}, "Invalid hostname"),
    ({"hostname": "-leading"}, "Invalid hostname"),
    ({"ip_address": "10.0.0.1 extra"}, "Invalid address"),
    ({"ip_address": "{{ lookup('env', 'X') }}"}, "Invalid address"),
    ({"ssh_port": 0}, "Invalid SSH port `0`"),
    ({"ssh_port": "ssh"}, "Invalid SSH port `ssh`"),
    ({"ssh_user": "root; rm"}, "Invalid SSH user"),
    ({"ssh_key_path": "{{ secret }}"}, "Invalid SSH key path"),
    ({"environment": "prod"}, "Unknown environment `prod`"),
    ({"tags": ["ok", "not ok"]}, "Invalid tag `not ok`"),
    ({"connection": "winrm"}, "Unsupported connection `winrm`"),
])
def test_malformed_settings_are_refused_with_a_clear_reason(kwargs, message):
    values = {"hostname": "web-09"}
    values.update(kwargs)

    with pytest.raises(InvalidInput, match=message):
        servers.check_spec(**values)


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidInput) as error:
        servers.check_spec("bad host", ssh_port=99999, environment="qa")

    assert "Invalid hostname" in str(error.value)
    assert "Invalid SSH port" in str(error.value)
    assert "Unknown environment `qa`" in str(error.value)


def test_list_servers_shows_active_ones_by_hostname(fleet):
    assert names(servers.list_servers(fleet)) == ["db-01", "web-01", "web-02"]
    assert names(servers.list_servers(fleet, active_only=False)) == [
        "db-01", "old-01", "web-01", "web-02"]


def test_list_servers_filters_by_tag_on_every_database_ignoring_case(fleet):
    assert names(servers.list_servers(fleet, tag="web")) == ["web-01", "web-02"]
    assert names(servers.list_servers(fleet, tag="EU")) == ["web-01"]
    assert names(servers.list_servers(fleet, tag="nope")) == []


def test_list_servers_filters_by_environment_and_tag_together(fleet):
    assert names(servers.list_servers(fleet, environment="staging", tag="web")) == ["web-02"]
    assert names(servers.list_servers(fleet, environment="production")) == ["db-01"]


def test_an_unknown_environment_filter_is_refused_with_a_suggestion(fleet):
    with pytest.raises(InvalidInput) as error:
        servers.list_servers(fleet, environment="prod")

    assert error.value.suggestions == ["production"]


def test_get_server_finds_any_case_and_suggests_on_a_typo(fleet):
    assert servers.get_server(fleet, "WEB-02").hostname == "web-02"

    with pytest.raises(UnknownServer) as error:
        servers.get_server(fleet, "web-3")
    assert "web-01" in error.value.suggestions


def test_get_server_can_insist_on_an_active_server(fleet):
    assert servers.get_server(fleet, "old-01").is_active is False

    with pytest.raises(UnknownServer, match="deactivated"):
        servers.get_server(fleet, "old-01", active_only=True)


def test_deactivating_is_audited_once_and_activating_brings_it_back(fleet):
    servers.deactivate_server(fleet, "web-02", origin=CLI)
    servers.deactivate_server(fleet, "web-02")
    servers.activate_server(fleet, "old-01")
    fleet.commit()

    assert names(servers.list_servers(fleet)) == ["db-01", "old-01", "web-01"]
    assert [r.resource_id for r in audit_rows(fleet, "server.deactivate")] == ["old-01", "web-02"]
    assert [r.resource_id for r in audit_rows(fleet, "server.activate")] == ["old-01"]


def test_deactivating_an_unknown_server_is_refused(fleet):
    with pytest.raises(UnknownServer):
        servers.deactivate_server(fleet, "ghost")


def test_server_tags_lists_the_tags_of_active_servers(fleet):
    assert servers.server_tags(fleet) == ["db", "eu", "web"]


@pytest.mark.parametrize("hostname", [
    "bücher.example", "сервер-01", "2001:db8::2", "fe80::1%eth0", "web_01", "db.eu-west-1",
    "a" * 255,
])
def test_hostnames_ansible_accepts_are_accepted_as_ansible_sees_them(hostname):
    assert servers.check_spec(hostname).hostname == hostname


@pytest.mark.parametrize("hostname", [
    "web 01", "web\t01", "web\x0001", "{{ host }}", "a,b", "web:01", "web*", "!web", "web&db",
    "[web]", "~web", ".web", "web-", "a" * 256,
])
def test_what_cannot_be_a_hostname_is_refused(hostname):
    with pytest.raises(InvalidInput, match="Invalid hostname"):
        servers.check_spec(hostname)


@pytest.mark.parametrize(("address", "stored"), [
    ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("192.0.2.7", "192.0.2.7"),
    ("ec2-203-0-113-25.eu-west-1.compute.amazonaws.com", "ec2-203-0-113-25.eu-west-1.compute"
     ".amazonaws.com"),
    (".".join(["a" * 63] * 3) + "." + "b" * 61, ".".join(["a" * 63] * 3) + "." + "b" * 61),
])
def test_ip_literals_and_dns_names_up_to_253_characters_are_addresses(address, stored):
    assert servers.check_spec("web-01", ip_address=address).ip_address == stored


def test_a_dns_name_longer_than_253_characters_is_refused():
    with pytest.raises(InvalidInput, match="at most 253 characters"):
        servers.check_spec("web-01", ip_address=".".join(["a" * 63] * 4))


def test_host_vars_are_kept_but_clear_text_passwords_and_bad_names_are_refused():
    vaulted = {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3031\n"}
    spec = servers.check_spec("web-01", host_vars={"http_port": 80, "ansible_become": True,
                                                   "ansible_become_password": vaulted})

    assert spec.host_vars["ansible_become_password"] == vaulted
    with pytest.raises(InvalidInput, match="ansible_password in clear text"):
        servers.check_spec("web-01", host_vars={"ansible_password": "hunter2"})
    with pytest.raises(InvalidInput, match="Invalid host variable name `bad-name`"):
        servers.check_spec("web-01", host_vars={"bad-name": 1})


def test_a_host_vars_change_is_audited_by_name_never_by_value(session):
    server = servers.add_server(session, "web-01", host_vars={"token_x": "old-secret"})
    spec = servers.check_spec("web-01", host_vars={"token_x": "new-secret", "port": 1})

    changes = servers.update_server(session, server, spec)

    assert changes["host_vars"] == {"added": ["port"], "changed": ["token_x"]}
    assert server.host_vars == {"token_x": "new-secret", "port": 1}
    assert all("secret" not in str(a.details) for a in session.scalars(select(AuditLog)))
