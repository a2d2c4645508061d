"""Fleet runs over real SSH test hosts (tests/support/ssh_hosts.py), through the worker:
connections from the servers rows, pinned host keys, become, and unreachable hosts each
failing only their own job with a clear reason while the others go on."""

from __future__ import annotations

import uuid

import pytest

from db.models import Job, JobStatus
from tests.support.ssh_hosts import PYTHON
from workers.execute import execute_job
from workers.known_hosts import trust
from workers.ssh import SshOptions, proxy_command

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

WRITE_AND_BECOME = """\
- name: Over SSH
  hosts: all
  gather_facts: false
  tasks:
    - name: Write into the login user's home
      ansible.builtin.copy:
        dest: "~/hello.txt"
        content: "hello from {{ inventory_hostname }}\\n"
    - name: Who am I with become
      ansible.builtin.command: id -un
      become: true
      register: who
    - name: Say it
      ansible.builtin.debug:
        msg: "become gave {{ who.stdout }}"
    - name: Break where the inventory says so
      ansible.builtin.fail:
        msg: "disk full on {{ inventory_hostname }}"
      when: break_me | default(false)
"""


def _ssh_run(world, hosts, *, pinned, broken=()):
    (world.playbook_dir / "overssh.yml").write_text(WRITE_AND_BECOME)
    playbook_id = world.playbook("overssh")
    user_id = world.user()
    run_id = str(uuid.uuid4())
    ids = []
    for host in hosts:
        server_id = world.server(host.name, connection="ssh", ip_address=host.address,
                                 ssh_port=host.port, ssh_user=host.user,
                                 ssh_key_path=str(host.key_path),
                                 host_vars={"ansible_python_interpreter": PYTHON,
                                            "break_me": host in broken})
        with world.factory.begin() as s:
            job = Job(playbook_id=playbook_id, server_id=server_id, user_id=user_id,
                      run_id=run_id, status=JobStatus.pending, extra_vars={})
            s.add(job)
            s.flush()
            ids.append(job.job_id)
    return ids


def test_a_run_over_ssh_writes_on_each_host_becomes_root_and_fails_only_the_bad_hosts(
        sqlite_world, config_for, ssh_hosts, tmp_path):
    world = sqlite_world
    good, stopped, unknown, failing = ssh_hosts(4)
    known_hosts = tmp_path / "known_hosts"
    trust([(h.name, h.address, h.port) for h in (good, stopped, failing)], known_hosts)
    stopped.stop()
    ids = _ssh_run(world, [good, stopped, unknown, failing], pinned=known_hosts,
                   broken=(failing,))
    config = config_for(world, known_hosts_file=known_hosts, ssh_connect_timeout=3)

    execute_job(ids[0], config)

    ok, down, stranger, failed = (world.get(i) for i in ids)
    assert failed.status == JobStatus.failed
    assert failed.error_message == (f"Task 'Break where the inventory says so' failed on "
                                    f"{failing.name}: disk full on {failing.name}")
    assert ok.status == JobStatus.success, ok.error_message
    assert (good.home / "hello.txt").read_text() == f"hello from {good.name}\n"
    assert any("become gave root" in r.content for r in world.logs(ids[0]))
    assert down.status == JobStatus.failed
    assert down.error_message.startswith("unreachable:")
    assert stranger.status == JobStatus.failed
    assert stranger.error_message.startswith("unreachable:")
    assert unknown.fingerprint in stranger.error_message
    assert f"playbot servers trust {unknown.name}" in stranger.error_message
    assert world.tickets(ids[1]) and world.tickets(ids[2]) and world.tickets(ids[3])


def test_a_changed_host_key_fails_the_job_with_a_warning(sqlite_world, config_for, ssh_hosts,
                                                           tmp_path):
    world = sqlite_world
    [host] = ssh_hosts(1)
    known_hosts = tmp_path / "known_hosts"
    trust([(host.name, host.address, host.port)], known_hosts)
    host.regenerate_host_key()
    ids = _ssh_run(world, [host], pinned=known_hosts)

    execute_job(ids[0], config_for(world, known_hosts_file=known_hosts,
                                   ssh_connect_timeout=3))

    job = world.get(ids[0])
    assert job.status == JobStatus.failed
    assert job.error_message.startswith("unreachable:")
    assert "attack" in job.error_message.lower()


def test_a_job_reaches_its_server_through_a_bastion_from_its_host_vars(
        sqlite_world, config_for, ssh_hosts, tmp_path):
    # given a server whose imported host vars send SSH through a jump host, both pinned
    world = sqlite_world
    target, jump = ssh_hosts(2)
    jump.set_log_level("DEBUG1")
    known_hosts = tmp_path / "known_hosts"
    trust([(target.name, target.address, target.port), ("bastion", jump.address, jump.port)],
          known_hosts)
    options = SshOptions(known_hosts_file=known_hosts, connect_timeout=3)
    common = proxy_command(jump.address, options, port=jump.port, user=jump.user,
                           key_path=str(jump.key_path))
    [job_id] = _ssh_run(world, [target], pinned=known_hosts)
    world.set(job_id, status=JobStatus.pending)
    with world.factory.begin() as s:
        server = s.get(Job, world.job_pk(job_id)).server
        server.host_vars = {**server.host_vars, "ansible_ssh_common_args": common}

    # when the worker runs it
    execute_job(job_id, config_for(world, known_hosts_file=known_hosts, ssh_connect_timeout=3))

    # then it succeeded, and its connection went through the jump host
    assert world.get(job_id).status == JobStatus.success, world.get(job_id).error_message
    assert (target.home / "hello.txt").exists()
    assert f"target {target.address} port {target.port}" in jump.log()
