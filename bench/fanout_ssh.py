"""Figure 8 — fan-out over SSH: figure 7 (`bench/fanout.py`) against real SSH test hosts.

The hosts are real `sshd`s on loopback started by `tests/support/ssh_hosts.py` (`SshFleet`:
127.0.0.2 and up, each with its own host key and login user, one client key per run): 20
of them (quick: 5, smoke: 2). Their `servers` rows carry address, port, user and key file,
and `host_vars` set `ansible_python_interpreter` as the test hosts' inventory does. Their
host keys are pinned in Playbot's own known_hosts (PLAYBOT_KNOWN_HOSTS, in the run's
temporary directory) through `workers.known_hosts.trust`, so no key is accepted blindly;
PLAYBOT_FORKS is the host count.

Baseline: plain `ansible-playbook -f <hosts>` with the same inventory (same addresses,
ports, users, key, interpreter) and the same SSH settings as the workers give Ansible —
`workers.ssh.ansible_ssh_env` (multiplexing, pipelining, the same known_hosts and strict
host key checking) — so both sides pay for the same connections. Value, baseline, target
(<= 1.3x) and the Slack and job_logs checks are figure 7's, under `fanout.ssh`.

Needs root (the fleet creates login users) and openssh-server; when the fleet or the
product's SSH pieces are missing the figure is reported as not run, naming what is missing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.context import BenchContext, ProductPieceMissing, require
from bench.fanout import FleetHost, measure, plain_env
from bench.results import Figure

CONNECT_TIMEOUT = 10  # PLAYBOT_SSH_CONNECT_TIMEOUT's default, on both sides
TITLE = "Fan-out over SSH: one tag: launch on 20 SSH test hosts vs plain ansible-playbook -f 20"


def ssh_fleet_class() -> Any:
    """`tests.support.ssh_hosts.SshFleet`, or ProductPieceMissing saying why it cannot run."""
    try:
        module = require("tests.support.ssh_hosts", "SshFleet")
    except ProductPieceMissing:
        raise ProductPieceMissing(
            "tests/support/ssh_hosts.py (SshFleet, the SSH test hosts) does not exist yet"
        ) from None
    if not module.SshFleet.available():
        raise ProductPieceMissing(f"SSH test hosts cannot start here: missing "
                                  f"{module.SshFleet.missing()}")
    return module.SshFleet


def requirements() -> tuple[Any, Any, Any]:
    """SshFleet, `workers.known_hosts` and `workers.ssh`; ProductPieceMissing names what
    is missing."""
    return (ssh_fleet_class(), require("workers.known_hosts", "trust"),
            require("workers.ssh", "ansible_ssh_env", "SshOptions"))


def pin_host_keys(trust: Any, known_hosts: Path, pairs: list[tuple[str, Any]]) -> None:
    """Pin every test host's key in Playbot's known_hosts with the product's own
    `workers.known_hosts.trust` (scanned over loopback), and check that what it pinned is
    the key each sshd really holds. `pairs`: (inventory hostname, SshHost)."""
    pinned = trust([(name, host.address, host.port) for name, host in pairs], known_hosts)
    by_host = {key.host: key.fingerprint for key in pinned}
    wrong = [name for name, host in pairs if by_host.get(name) != host.fingerprint]
    if wrong:
        raise RuntimeError(f"workers.known_hosts.trust pinned no or another key for "
                           f"{', '.join(wrong)} in {known_hosts}")


def run(ctx: BenchContext) -> list[Figure]:
    fleet_class, known_hosts_mod, ssh_mod = requirements()
    count = ctx.size(20, 5, smoke=2)
    tmp = Path(tempfile.mkdtemp(prefix="playbot-bench-fanout-ssh-"))
    fleet = fleet_class(count)
    try:
        fleet.start()
        known_hosts = tmp / "known_hosts"
        pin_host_keys(known_hosts_mod.trust, known_hosts,
                      [(f"fleet-{host.index:02d}", host) for host in fleet.hosts])
        interpreter = str(fleet.hosts[0].inventory_vars()["ansible_python_interpreter"])
        hosts = [FleetHost(hostname=f"fleet-{host.index:02d}", address=host.address,
                           port=host.port, user=host.user, key_path=str(host.key_path),
                           local=False,
                           host_vars=(("ansible_python_interpreter", interpreter),))
                 for host in fleet.hosts]
        control_dir = tmp / "cp"
        control_dir.mkdir(mode=0o700)
        ssh_env = ssh_mod.ansible_ssh_env(ssh_mod.SshOptions(
            known_hosts_file=known_hosts, accept_new_host_keys=False,
            connect_timeout=CONNECT_TIMEOUT, control_dir=control_dir))
        return measure(ctx, key="fanout.ssh", label="fanout_ssh", hosts=hosts,
                       extra_env={"PLAYBOT_KNOWN_HOSTS": str(known_hosts),
                                  "PLAYBOT_SSH_ACCEPT_NEW_HOST_KEYS": "false",
                                  "PLAYBOT_SSH_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)},
                       ansible_env=plain_env(**ssh_env),
                       describe="SSH test hosts")
    finally:
        fleet.stop()
        shutil.rmtree(tmp, ignore_errors=True)
