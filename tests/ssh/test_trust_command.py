"""`playbot servers trust`: servers looked up in the database, their keys scanned, printed,
pinned in PLAYBOT_KNOWN_HOSTS and audited; changed keys refused unless --replace."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditLog
from db.session import make_engine
from tests.support.cli import run_cli
from workers.known_hosts import fingerprints

pytestmark = pytest.mark.ssh


@pytest.fixture
def playbot(db_url, tmp_path):  # type: ignore[no-untyped-def]
    known_hosts = tmp_path / "pins" / "known_hosts"

    def playbot(*args: str):  # type: ignore[no-untyped-def]
        return run_cli(*args, env={"DATABASE_URL": db_url, "LOG_LEVEL": "WARNING",
                                   "PLAYBOT_KNOWN_HOSTS": str(known_hosts)})

    playbot.known_hosts = known_hosts  # type: ignore[attr-defined]
    playbot.url = db_url  # type: ignore[attr-defined]
    return playbot


def add(playbot, host) -> None:  # type: ignore[no-untyped-def]
    result = playbot("servers", "add", host.name, "--ip", host.address, "--port",
                     str(host.port), "--user", host.user, "--key", str(host.key_path))
    assert result.exit_code == 0, result.stderr


def audits(url: str) -> list[AuditLog]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(select(AuditLog).where(
                AuditLog.action == "server.trust_host_key").order_by(AuditLog.id)))
    finally:
        engine.dispose()


def test_trust_pins_each_servers_key_prints_its_fingerprint_and_audits_it(
        playbot, ssh_hosts):
    # given two registered servers
    hosts = ssh_hosts(2)
    for host in hosts:
        add(playbot, host)
    # when an operator trusts them
    result = playbot("servers", "trust", *(h.name for h in hosts))
    # then each fingerprint is printed as pinned, the file holds them and the audit says so
    assert result.exit_code == 0, result.stderr
    for host in hosts:
        assert (f"{host.name} {host.marker} ssh-ed25519 {host.fingerprint}: pinned"
                in result.stdout)
        assert fingerprints(playbot.known_hosts, host.address, host.port) == [host.fingerprint]
    rows = audits(playbot.url)
    assert [r.resource_id for r in rows] == [h.name for h in hosts]
    assert rows[0].details["host_keys"][0]["status"] == "pinned"
    assert rows[0].details["via"] == "cli"


def test_trust_refuses_a_changed_key_with_a_warning_until_replace_is_given(
        playbot, ssh_hosts):
    # given a server whose pinned key has since changed
    [host] = ssh_hosts(1)
    add(playbot, host)
    assert playbot("servers", "trust", host.name).exit_code == 0
    old = host.fingerprint
    new = host.regenerate_host_key()
    # when it is trusted again
    refused = playbot("servers", "trust", host.name)
    # then nothing is replaced, exit 1, with the warning and the way to re-pin
    assert refused.exit_code == 1
    assert f"{new}: CHANGED: not pinned" in refused.stdout
    assert "This may be an attack" in refused.stderr
    assert f"playbot servers trust {host.name} --replace" in refused.stderr
    assert fingerprints(playbot.known_hosts, host.address, host.port) == [old]
    # and with --replace the new key is pinned instead of the old one
    replaced = playbot("servers", "trust", host.name, "--replace")
    assert replaced.exit_code == 0, replaced.stderr
    assert f"{new}: replaced (pinned)" in replaced.stdout
    assert fingerprints(playbot.known_hosts, host.address, host.port) == [new]


def test_trust_of_an_unknown_server_or_a_dead_host_exits_2_pinning_nothing(
        playbot, ssh_hosts):
    # given one registered server that is down
    [host] = ssh_hosts(1)
    add(playbot, host)
    host.stop()
    # when the operator trusts it, or a server that does not exist
    dead = playbot("servers", "trust", host.name)
    unknown = playbot("servers", "trust", "no-such-server")
    # then both exit 2 with a message naming the host and why, and nothing is pinned
    assert dead.exit_code == 2
    assert f"Cannot read the SSH host key of {host.name}:" in dead.stderr
    assert "connection refused (nothing listens there" in dead.stderr
    assert unknown.exit_code == 2
    assert "Server `no-such-server` is not registered." in unknown.stderr
    assert not playbot.known_hosts.exists() or playbot.known_hosts.read_text() == ""
    assert audits(playbot.url) == []


def test_trust_bastion_pins_a_jump_host_that_is_not_a_server(playbot, ssh_hosts):
    # given a jump host that is not registered as a server
    [jump] = ssh_hosts(1)
    # when the operator pins it by address
    result = playbot("servers", "trust", "--bastion", jump.marker)
    # then its key is pinned under its address and port
    assert result.exit_code == 0, result.stderr
    assert fingerprints(playbot.known_hosts, jump.address, jump.port) == [jump.fingerprint]
