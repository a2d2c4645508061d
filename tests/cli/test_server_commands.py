"""`playbot servers`: servers added by hand or imported from an Ansible inventory (real-world
inventories in tests/inventories, compared with `ansible-inventory --list`), server groups,
vault, unsupported hosts, the production rule; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from db.models import AuditLog, Environment, Server, ServerGroup
from tests.cli.conftest import EXAMPLES
from tests.support.cli import run_cli


def test_add_then_list_by_environment_and_tag(playbot):
    added = playbot("servers", "add", "web-01", "--ip", "10.0.0.1", "--port", "2222",
                    "--user", "deploy", "--key", "~/.ssh/web", "--env", "staging",
                    "--tag", "web", "--tag", "eu,blue")
    playbot("servers", "add", "local", "--local", "--ip", "127.0.0.1")

    by_tag = playbot("servers", "list", "--tag", "EU")
    by_env = playbot("servers", "list", "--env", "development", "--json")

    assert added.exit_code == 0, added.stderr
    assert "Added web-01 (staging, tags web, eu, blue)" in added.stdout
    assert [line.split()[0] for line in by_tag.stdout.splitlines()] == ["HOSTNAME", "web-01"]
    [local] = json.loads(by_env.stdout)
    assert (local["hostname"], local["connection"]) == ("local", "local")
    server = playbot.query(lambda s: s.query(Server).filter_by(hostname="web-01").one())
    assert (server.ssh_port, server.ssh_user, server.ssh_key_path, server.environment) == (
        2222, "deploy", "~/.ssh/web", Environment.staging)
    assert [a.resource_id for a in playbot.audits("server.add")] == ["web-01", "local"]
    assert all(a.details["via"] == "cli" for a in playbot.audits("server.add"))


def test_bad_server_input_exits_2_and_writes_nothing(playbot):
    bad_env = playbot("servers", "add", "web-01", "--env", "prod")
    bad_tag = playbot("servers", "add", "web-01", "--tag", "no spaces please")
    bad_port = playbot("servers", "add", "web-01", "--port", "70000")

    assert (bad_env.exit_code, bad_tag.exit_code, bad_port.exit_code) == (2, 2, 2)
    assert "Unknown environment `prod`" in bad_env.stderr and "production" in bad_env.stderr
    assert "Invalid tag" in bad_tag.stderr
    assert "Invalid SSH port" in bad_port.stderr
    assert playbot.count(Server) == 0
    assert playbot.count(AuditLog) == 0


def test_deactivating_hides_a_server_from_the_list(playbot):
    playbot("servers", "add", "web-01")

    off = playbot("servers", "deactivate", "web-01")
    unknown = playbot("servers", "deactivate", "web-1")

    assert off.exit_code == 0 and "Deactivated web-01" in off.stdout
    assert unknown.exit_code == 2 and "Did you mean: web-01?" in unknown.stderr
    assert "No servers" in playbot("servers", "list").stdout
    assert "web-01" in playbot("servers", "list", "--all").stdout
    assert [a.action for a in playbot.audits()] == ["server.add", "server.deactivate"]


def test_import_of_the_example_inventory_creates_then_finds_nothing_to_change(playbot):
    first = playbot("servers", "import", str(EXAMPLES / "inventory.yml"))
    second = playbot("servers", "import", str(EXAMPLES / "inventory.yml"))

    assert first.exit_code == 0, first.stderr
    assert "2 new, 0 updated, 0 unchanged" in first.stdout
    assert "0 new, 0 updated, 2 unchanged" in second.stdout
    servers = playbot.query(lambda s: {x.hostname: (x.environment, x.connection)
                                       for x in s.query(Server)})
    assert servers == {"local": (Environment.development, "local"),
                       "prod-local": (Environment.production, "local")}
    assert sorted(a.resource_id for a in playbot.audits("server.import")) == ["local",
                                                                              "prod-local"]


def test_a_dry_run_import_shows_the_plan_and_writes_nothing(playbot):
    result = playbot("servers", "import", str(EXAMPLES / "inventory.yml"), "--dry-run")

    assert result.exit_code == 0
    assert "Would import 2 hosts" in result.stdout and "+ prod-local" in result.stdout
    assert playbot.count(Server) == 0 and playbot.count(AuditLog) == 0


def test_an_inventory_with_one_bad_host_exits_2_and_imports_nothing(playbot, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[development]\ngood-01\n[web]\nstray-01\n")

    refused = playbot("servers", "import", str(inventory))
    defaulted = playbot("servers", "import", str(inventory), "--default-env", "staging")

    assert refused.exit_code == 2
    assert "stray-01: no environment" in refused.stderr
    assert defaulted.exit_code == 0
    assert playbot.count(Server) == 2


# real-world inventories (tests/inventories), compared with what Ansible itself reports -----

INVENTORIES = Path(__file__).resolve().parents[1] / "inventories"
BIN = Path(sys.executable).parent


def ansible_list(source: Path, *extra: str) -> dict:
    """`ansible-inventory -i SOURCE --list` as Ansible prints it."""
    done = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list", *extra],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def ansible_hosts(doc: dict) -> set[str]:
    return {h for name, body in doc.items() if name != "_meta" for h in body.get("hosts", [])}


def decrypted(value, password: Path):
    """A value as Ansible would use it: `{"__ansible_vault": ...}` decrypted with ansible-vault."""
    if not (isinstance(value, dict) and "__ansible_vault" in value):
        return value
    done = subprocess.run([str(BIN / "ansible-vault"), "decrypt", "--vault-password-file",
                           str(password), "--output", "-"], input=value["__ansible_vault"],
                          capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.parametrize("name", ["docs_ini.ini", "docs_yaml.yml", "docs_directory",
                                  "inline_vault.yml"])
def test_import_takes_the_same_hosts_addresses_ports_and_users_as_ansible(playbot, name):
    # given an inventory shaped like Ansible's docs (or with inline !vault, and its password)
    source = INVENTORIES / name
    password = INVENTORIES / "vault-password"
    vault_args = ("--vault-password-file", str(password)) if "vault" in name else ()
    doc = ansible_list(source, *vault_args)

    # when it is imported
    result = playbot("servers", "import", str(source), *vault_args)

    # then every host Ansible lists is a server reached the way Ansible would reach it
    assert result.exit_code == 0, result.stderr
    imported = playbot.query(lambda s: {x.hostname: (x.ip_address or x.hostname, x.ssh_port,
                                                     x.ssh_user) for x in s.query(Server)})
    hostvars = doc["_meta"]["hostvars"]
    var = lambda h, n, default=None: decrypted(hostvars.get(h, {}).get(n, default), password)  # noqa: E731
    expected = {h: (var(h, "ansible_host", h), int(var(h, "ansible_port", 22)),
                    var(h, "ansible_user")) for h in ansible_hosts(doc)}
    assert imported == expected


def test_a_directory_inventory_keeps_groups_their_variables_and_host_variables(playbot):
    result = playbot("servers", "import", str(INVENTORIES / "docs_directory"))

    assert result.exit_code == 0, result.stderr
    web02 = playbot("servers", "show", "web02", "--json")
    shown = json.loads(web02.stdout)
    assert shown["environment"] == "production"
    assert shown["address"].startswith("ec2-203-0-113-25.eu-west-1.compute.amazonaws.com")
    assert shown["groups"] == ["web-servers"] and shown["tags"] == ["web-servers"]
    assert shown["host_vars"] == {"max_clients": 200}
    group = json.loads(playbot("servers", "groups", "web-servers", "--json").stdout)
    assert group["variables"]["ansible_become"] is True
    assert "ProxyCommand" in group["variables"]["ansible_ssh_common_args"]
    assert group["parents"] == ["production"]
    db = json.loads(playbot("servers", "groups", "db.eu", "--json").stdout)
    assert db["members"] == ["2001:db8::10", "2001:db8::11", "bücher.example"]
    ipv6 = json.loads(playbot("servers", "show", "2001:db8::11", "--json").stdout)
    assert ipv6["port"] == 2200
    everything = json.loads(playbot("servers", "groups", "all", "--json").stdout)
    assert everything["variables"] == {"ansible_python_interpreter": "/usr/bin/python3"}
    assert {a.resource_id for a in playbot.audits("server_group.create")} == {
        "all", "production", "web-servers", "db.eu"}


def test_re_import_updates_group_variables_and_membership_and_removes_emptied_groups(
        playbot, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[development]\nh1\nh2\n[web]\nh1\nh2\n[old]\nh2\n[web:vars]\nport=80\n")
    playbot("servers", "import", str(inventory))
    inventory.write_text("[development]\nh1\nh2\n[web]\nh1\n[web:vars]\nport=8080\n")

    again = playbot("servers", "import", str(inventory))

    assert again.exit_code == 0, again.stderr
    assert "~ group web (members, variables)" in again.stdout
    assert "- group old" in again.stdout
    web = json.loads(playbot("servers", "groups", "web", "--json").stdout)
    assert (web["members"], web["variables"]) == (["h1"], {"port": 8080})
    assert "old" not in playbot("servers", "groups").stdout
    [update] = [a for a in playbot.audits("server_group.update") if a.resource_id == "web"]
    assert update.details["changes"]["members"] == {"removed": ["h2"]}
    assert update.details["changes"]["variables"] == {"changed": ["port"]}


def test_unsupported_hosts_refuse_the_import_all_listed_unless_skipped(playbot):
    source = str(INVENTORIES / "unsupported.yml")

    refused = playbot("servers", "import", source)
    skipped = playbot("servers", "import", source, "--skip-unsupported")

    assert refused.exit_code == 2
    for host in ("win-01 (winrm)", "box-01 (community.docker.docker)",
                 "switch-01 (ansible.netcommon.network_cli)"):
        assert host in refused.stderr
    assert "--skip-unsupported" in refused.stderr
    assert skipped.exit_code == 0, skipped.stderr
    assert "skipped: win-01 (connection winrm" in skipped.stdout
    assert playbot.query(lambda s: [x.hostname for x in s.query(Server)]) == ["linux-01"]


def test_a_production_host_is_never_moved_out_of_production_by_playbot_environment(playbot):
    result = playbot("servers", "import", str(INVENTORIES / "production_override.yml"))

    assert result.exit_code == 2
    assert "db-01: it is in the group production but playbot_environment says `staging`" in (
        result.stderr)
    assert playbot.count(Server) == 0


def vault(tmp_path: Path, text: str, name: str) -> str:
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    done = subprocess.run([str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file",
                           str(password), text, "--name", name],
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_inline_vault_values_stay_encrypted_and_needed_ones_require_the_password(
        playbot, tmp_path):
    # given a YAML inventory with a vaulted secret no column needs and a vaulted ansible_host
    secret = vault(tmp_path, "hunter2", "db_password")
    address = vault(tmp_path, "10.9.9.9", "ansible_host")
    indent = lambda block: "\n".join("          " + line for line in block.splitlines())  # noqa: E731
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    development:\n      hosts:\n        db-01:\n"
                         + indent(secret) + "\n        app-01:\n" + indent(address) + "\n")

    # when imported without, then with the password
    without = playbot("servers", "import", str(inventory), "--dry-run")
    with_password = playbot("servers", "import", str(inventory), "--vault-password-file",
                            str(tmp_path / "vault-pass"))

    # then the needed value is named, never a traceback; with the password it is decrypted
    # into its column while the other one stays encrypted
    assert without.exit_code == 2
    assert "app-01: ansible_host (set on the host; Playbot needs it for the server's address) " \
           "is vault-encrypted" in without.stderr
    assert "Traceback" not in without.stderr + without.stdout
    assert with_password.exit_code == 0, with_password.stderr
    rows = playbot.query(lambda s: {x.hostname: (x.ip_address, x.host_vars)
                                    for x in s.query(Server)})
    assert rows["app-01"] == ("10.9.9.9", {})
    stored = rows["db-01"][1]["db_password"]
    assert set(stored) == {"__ansible_vault"} and "hunter2" not in json.dumps(stored)
    shown = playbot("servers", "show", "db-01")
    assert "db_password: \"(vault-encrypted)\"" in shown.stdout
    assert all("hunter2" not in json.dumps(a.details) for a in playbot.audits())


def test_a_vaulted_group_vars_file_is_kept_as_ciphertext_and_needs_the_password(
        playbot, tmp_path):
    (tmp_path / "group_vars").mkdir()
    secret = tmp_path / "group_vars" / "web.yml"
    secret.write_text("api_token: s3cr3t-value\nhttp_port: 80\n")
    password = tmp_path / "vault-pass"
    password.write_text("correct horse\n")
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(password), str(secret)], capture_output=True, check=True)
    inventory = tmp_path / "hosts"
    inventory.write_text("[development]\nweb-01\n[web]\nweb-01\n")

    without = playbot("servers", "import", str(inventory))
    with_password = playbot("servers", "import", str(inventory), "--vault-password-file",
                            str(password))

    assert without.exit_code == 2 and "group_vars/web.yml" in without.stderr
    assert "--vault-password-file" in without.stderr
    assert with_password.exit_code == 0, with_password.stderr
    web = playbot.query(lambda s: s.query(ServerGroup).filter_by(name="web").one().variables)
    assert web == {"__playbot_vault_files": [secret.read_text()]}
    assert "s3cr3t" not in json.dumps(web)


def test_an_executable_inventory_script_is_refused_and_never_run(playbot, tmp_path):
    marker = tmp_path / "ran"
    script = tmp_path / "inventory.py"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    script.chmod(0o755)

    result = playbot("servers", "import", str(script))

    assert result.exit_code == 2 and "executable inventory script" in result.stderr
    assert "ansible-inventory -i" in result.stderr
    assert not marker.exists()


def test_clear_text_connection_passwords_are_refused_with_advice(playbot, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[development]\nh1 ansible_become_password=hunter2\n")

    result = playbot("servers", "import", str(inventory))

    assert result.exit_code == 2
    assert "ansible_become_password in clear text" in result.stderr
    assert "ansible-vault encrypt_string" in result.stderr
    assert playbot.count(Server) == 0


def test_group_names_a_hosts_pattern_cannot_use_are_refused_naming_the_group(playbot, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    'web&db':\n      hosts:\n        h1:\n"
                         "    development:\n      hosts:\n        h1:\n")

    result = playbot("servers", "import", str(inventory))

    assert result.exit_code == 2
    assert "group `web&db` cannot be used in a `hosts:` pattern" in result.stderr
    assert playbot.count(Server) == 0


def test_a_dry_run_of_a_directory_inventory_writes_nothing(playbot):
    result = playbot("servers", "import", str(INVENTORIES / "docs_directory"), "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "Would import 5 hosts" in result.stdout and "+ group db.eu" in result.stdout
    assert playbot.count(Server) == 0 and playbot.count(ServerGroup) == 0
    assert playbot.count(AuditLog) == 0


@pytest.mark.ssh
def test_trust_host_keys_pins_the_imported_ssh_servers_keys_and_prints_fingerprints(
        playbot, ssh_hosts, tmp_path):
    # given an inventory of two real SSH test hosts and one local host
    hosts = ssh_hosts(2)
    lines = [f"{h.name} ansible_host={h.address} ansible_port={h.port} ansible_user={h.user} "
             f"ansible_ssh_private_key_file={h.key_path}" for h in hosts]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[development]\n" + "\n".join(lines) + "\nbox ansible_connection=local\n")
    known_hosts = tmp_path / "known_hosts"
    env = {"DATABASE_URL": playbot.url, "PLAYBOOK_DIR": str(playbot.playbook_dir),
           "LOG_LEVEL": "WARNING", "PLAYBOT_KNOWN_HOSTS": str(known_hosts)}

    # when it is imported with --trust-host-keys
    result = run_cli("servers", "import", str(inventory), "--trust-host-keys", env=env)

    # then both servers exist and their host keys are pinned, fingerprints printed
    assert result.exit_code == 0, result.stderr
    assert playbot.count(Server) == 3
    for host in hosts:
        assert f"pinned {host.name} [{host.address}]:{host.port}" in result.stdout
        assert host.fingerprint in result.stdout
        assert host.public_key_in(known_hosts)
    assert "box" not in known_hosts.read_text()


def test_host_variables_can_be_given_by_hand_and_clear_text_passwords_cannot(playbot):
    added = playbot("servers", "add", "web-01", "--var", "ansible_become=true",
                    "--var", "ansible_ssh_common_args=-o ProxyJump=bastion")
    refused = playbot("servers", "add", "web-02", "--var", "ansible_password=hunter2")

    assert added.exit_code == 0, added.stderr
    shown = json.loads(playbot("servers", "show", "web-01", "--json").stdout)
    assert shown["host_vars"] == {"ansible_become": True,
                                  "ansible_ssh_common_args": "-o ProxyJump=bastion"}
    assert refused.exit_code == 2 and "ansible_password in clear text" in refused.stderr
    assert "hunter2" not in refused.stderr
