"""Playbooks over real SSH with workers.ssh's environment: success, become, multiplexing,
and every way a host is unreachable — each failing fast with a clear explanation."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.ssh.ansible import close_masters, run
from workers.known_hosts import trust
from workers.ssh import SshOptions, explain_unreachable, proxy_command

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

WRITE_FILE = """
- hosts: all
  gather_facts: false
  tasks:
    - copy: {dest: "~/hello.txt", content: "hello from {{ inventory_hostname }}\\n"}
"""

BECOME = """
- hosts: all
  gather_facts: false
  become: true
  tasks:
    - command: id -un
      register: who
    - copy: {dest: "/tmp/{{ ansible_user }}-become.txt", content: "{{ who.stdout }}\\n"}
"""


@pytest.fixture(autouse=True)
def control_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A short control directory for the test (tmp_path can be too long for ssh's sockets,
    e.g. under pytest-xdist), removed afterwards."""
    directory = _control_dir(tmp_path)
    directory.mkdir(mode=0o700, exist_ok=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _control_dir(tmp_path: Path) -> Path:
    digest = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"pbcp-{digest}"


def options(tmp_path: Path, **changes) -> SshOptions:  # type: ignore[no-untyped-def]
    return SshOptions(**{"known_hosts_file": tmp_path / "known_hosts", "connect_timeout": 3,
                         "control_dir": _control_dir(tmp_path), **changes})


def pin(hosts, opts: SshOptions) -> None:  # type: ignore[no-untyped-def]
    trust([(h.name, h.address, h.port) for h in hosts], opts.known_hosts_file)


def explain(host, message: str, opts: SshOptions) -> str:  # type: ignore[no-untyped-def]
    return explain_unreachable(host.name, host.address, host.port, message, opts)


def test_a_playbook_runs_over_ssh_on_pinned_hosts_and_writes_into_each_users_home(
        ssh_hosts, tmp_path):
    # given three hosts whose keys are pinned
    hosts = ssh_hosts(3)
    opts = options(tmp_path)
    pin(hosts, opts)
    # when a playbook writes a file on each
    outcome = run(tmp_path, hosts, WRITE_FILE, opts)
    # then every host succeeded and the file is in each login user's home
    assert outcome.status == "successful", outcome.stdout
    assert outcome.ok == {h.name for h in hosts}
    for host in hosts:
        written = host.home / "hello.txt"
        assert written.read_text() == f"hello from {host.name}\n"
        assert written.stat().st_uid == host.home.stat().st_uid


def test_become_runs_tasks_as_root_through_sudo(ssh_hosts, tmp_path):
    # given a pinned host whose user may sudo
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    target = Path(f"/tmp/{host.user}-become.txt")
    try:
        # when a play with become: true runs
        outcome = run(tmp_path, [host], BECOME, opts)
        # then its commands ran as root and its file belongs to root
        assert outcome.status == "successful", outcome.stdout
        assert target.read_text() == "root\n"
        assert target.stat().st_uid == 0
    finally:
        target.unlink(missing_ok=True)


def test_connections_are_multiplexed_through_a_control_socket_in_the_control_dir(
        ssh_hosts, tmp_path):
    # given a pinned host
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    # when a playbook of several tasks runs
    before = len(host.log())
    outcome = run(tmp_path, [host], WRITE_FILE, opts, close=False)
    # then one master connection served them: its socket is in the control dir, and sshd
    # saw a single login for the whole play
    assert outcome.status == "successful", outcome.stdout
    sockets = list(_control_dir(tmp_path).iterdir())
    assert sockets and all(s.is_socket() for s in sockets)
    log = host.log()[before:]
    assert log.count(f"Accepted publickey for {host.user}") == 1
    assert log.count("Starting session:") >= 3
    close_masters(opts)


def test_a_host_with_nothing_listening_is_unreachable_with_connection_refused(
        ssh_hosts, tmp_path):
    # given two pinned hosts, one of which has stopped its sshd
    down, up = ssh_hosts(2)
    opts = options(tmp_path)
    pin([down, up], opts)
    down.stop()
    # when a playbook runs on both
    outcome = run(tmp_path, [down, up], WRITE_FILE, opts)
    # then the dead one is unreachable, refused, and the other one went on
    assert set(outcome.unreachable) == {down.name}
    assert outcome.ok == {up.name}
    text = explain(down, outcome.unreachable[down.name], opts)
    assert text.startswith(f"unreachable: {down.name}: connection refused by {down.address} "
                           f"port {down.port}")
    assert outcome.elapsed < 30


def test_a_wrong_key_is_unreachable_with_permission_denied(ssh_hosts, tmp_path):
    # given a pinned host and a key it does not know
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)],
                   check=True)
    # when a playbook logs in with it
    outcome = run(tmp_path, [host], WRITE_FILE, opts,
                  host_vars={host.name: {"ansible_ssh_private_key_file": str(other_key)}})
    # then the host is unreachable: permission denied (publickey)
    text = explain(host, outcome.unreachable[host.name], opts)
    assert text == (f"unreachable: {host.name}: {host.user}@{host.address}: permission denied "
                    "(publickey): check the server's SSH user and key file, and that the key "
                    "is in that user's authorized_keys.")


def test_a_wrong_user_is_unreachable_with_permission_denied(ssh_hosts, tmp_path):
    # given a pinned host
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    # when a playbook logs in as a user the host does not allow
    outcome = run(tmp_path, [host], WRITE_FILE, opts,
                  host_vars={host.name: {"ansible_user": "nobody"}})
    # then it is unreachable, naming that user
    text = explain(host, outcome.unreachable[host.name], opts)
    assert text.startswith(f"unreachable: {host.name}: nobody@{host.address}: permission "
                           "denied (publickey)")


def test_an_unknown_host_key_is_refused_naming_its_fingerprint_and_the_trust_command(
        ssh_hosts, tmp_path):
    # given a host whose key was never pinned
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    # when a playbook runs on it
    outcome = run(tmp_path, [host], WRITE_FILE, opts)
    # then nothing ran there, and the job's text names the key and how to pin it
    assert not (host.home / "hello.txt").exists()
    text = explain(host, outcome.unreachable[host.name], opts)
    assert text == (f"unreachable: the SSH host key of {host.name} ({host.marker}) is not "
                    f"pinned and Playbot never accepts an unknown key: it offers ED25519 "
                    f"{host.fingerprint}. If that is the server's key, pin it: "
                    f"`playbot servers trust {host.name}`.")
    assert not opts.known_hosts_file.exists() or host.address not in \
        opts.known_hosts_file.read_text()


def test_a_changed_host_key_is_refused_with_a_warning_that_it_may_be_an_attack(
        ssh_hosts, tmp_path):
    # given a pinned host that now presents another key
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    old = host.fingerprint
    new = host.regenerate_host_key()
    # when a playbook runs on it
    outcome = run(tmp_path, [host], WRITE_FILE, opts)
    # then it is refused with both fingerprints, the warning and how to re-pin after checking
    assert not (host.home / "hello.txt").exists()
    text = explain(host, outcome.unreachable[host.name], opts)
    assert text.startswith(f"unreachable: WARNING: the SSH host key of {host.name} "
                           f"({host.marker}) has CHANGED: it now offers ED25519 {new}, "
                           f"Playbot pinned {old}. This may be an attack")
    assert text.endswith(f"`playbot servers trust {host.name} --replace`.")


def test_accept_new_pins_an_unknown_key_on_first_contact_but_still_refuses_a_changed_one(
        ssh_hosts, tmp_path):
    # given a lab setting that accepts new host keys, and a host never pinned
    [host] = ssh_hosts(1)
    opts = options(tmp_path, accept_new_host_keys=True)
    # when a playbook runs on it
    first = run(tmp_path, [host], WRITE_FILE, opts)
    # then it ran and its key is now pinned
    assert first.status == "successful", first.stdout
    assert host.public_key_in(opts.known_hosts_file)
    # and when the key then changes, the next run is refused all the same
    host.regenerate_host_key()
    second = run(tmp_path, [host], WRITE_FILE, opts)
    assert "has CHANGED" in explain(host, second.unreachable[host.name], opts)


def test_a_host_that_never_answers_is_unreachable_within_the_connect_timeout(
        ssh_hosts, tmp_path):
    # given an address whose port accepts TCP connections but never speaks SSH
    [host] = ssh_hosts(1)
    opts = options(tmp_path, connect_timeout=2)
    silent = socket.socket()
    silent.bind((host.address, 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        # when a playbook runs on it
        outcome = run(tmp_path, [host], WRITE_FILE, opts,
                      host_vars={host.name: {"ansible_port": port}})
        # then it is unreachable after about the connect timeout, saying it timed out
        text = explain_unreachable(host.name, host.address, port,
                                   outcome.unreachable[host.name], opts)
        assert "timed out" in text and "(connect timeout 2s)" in text, text
        assert outcome.elapsed < 2 + 10
    finally:
        silent.close()


def test_a_bastion_proxy_command_reaches_the_target_through_the_jump_host(
        ssh_hosts, tmp_path):
    # given a target and a jump host, both pinned, the jump logging forwarded connections
    target, jump = ssh_hosts(2)
    jump.set_log_level("DEBUG1")
    opts = options(tmp_path)
    pin([target], opts)
    trust([("bastion", jump.address, jump.port)], opts.known_hosts_file)
    common = proxy_command(jump.address, opts, port=jump.port, user=jump.user,
                           key_path=str(jump.key_path))
    # when a playbook runs on the target with the ProxyCommand
    outcome = run(tmp_path, [target], WRITE_FILE, opts,
                  host_vars={target.name: {"ansible_ssh_common_args": common}})
    # then it ran, and its connection went through the jump host
    assert outcome.status == "successful", outcome.stdout
    assert (target.home / "hello.txt").exists()
    assert f"target {target.address} port {target.port}" in jump.log()


def test_an_unpinned_jump_host_is_refused_and_named_as_the_jump_host(ssh_hosts, tmp_path):
    # given a pinned target behind a jump host whose key was never pinned
    target, jump = ssh_hosts(2)
    opts = options(tmp_path)
    pin([target], opts)
    common = proxy_command(jump.address, opts, port=jump.port, user=jump.user,
                           key_path=str(jump.key_path))
    # when a playbook runs on the target through it
    outcome = run(tmp_path, [target], WRITE_FILE, opts,
                  host_vars={target.name: {"ansible_ssh_common_args": common}})
    # then it is unreachable, and the text names the jump host's key and how to pin it
    text = explain_unreachable(target.name, target.address, target.port,
                               outcome.unreachable[target.name], opts, ssh_common_args=common)
    assert f"the SSH host key of the jump host {jump.marker} (on the way to {target.name})" \
        in text, text
    assert jump.fingerprint in text
    assert f"`playbot servers trust --bastion {jump.marker}`" in text


def test_pipelining_is_on_unless_a_host_turns_it_off(ssh_hosts, tmp_path):
    # given a pinned host and a play of commands only
    [host] = ssh_hosts(1)
    opts = options(tmp_path)
    pin([host], opts)
    commands = "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n"
    remote_tmp = host.home / ".ansible" / "tmp"
    # when it runs with the defaults
    piped = run(tmp_path, [host], commands, opts)
    # then the modules were piped: Ansible made no temporary directory on the host
    assert piped.status == "successful", piped.stdout
    assert not remote_tmp.exists()
    # and when the host says ansible_pipelining: false, modules are copied over (via a
    # temporary directory) instead
    plain = run(tmp_path, [host], commands, opts,
                host_vars={host.name: {"ansible_pipelining": False}})
    assert plain.status == "successful", plain.stdout
    assert remote_tmp.is_dir()
