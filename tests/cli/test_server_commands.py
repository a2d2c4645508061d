"""`playbot servers`: servers added by hand or imported from an Ansible inventory, listed by
environment and tag; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json

from db.models import AuditLog, Environment, Server
from tests.cli.conftest import EXAMPLES


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
