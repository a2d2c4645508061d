"""A launch on several servers is one Ansible run: real ansible-playbook over several
`connection: local` inventory hosts, on SQLite and MariaDB.

Each job holds its own host's lines (numbered without gaps) and ends by its own host's
result; groups, group and host variables, `serial`, `run_once` and dashed group names mean
what they mean under plain `ansible-playbook -i <same inventory> --limit <targets>`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core.run_inventory import build_run_inventory
from db.models import Job, JobStatus, Server, ServerGroup
from workers.execute import execute_job

pytestmark = pytest.mark.slow

FLEET_PLAYBOOK = """\
- name: Fleet
  hosts: all
  gather_facts: false
  tasks:
    - name: Say who
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }} port={{ http_port | default('none') }} web={{ groups['web-servers'] | default([]) | join(',') }}"
    - name: One play over the whole run
      ansible.builtin.debug:
        msg: "play hosts {{ ansible_play_hosts_all | join(',') }}"
    - name: Once for the run
      ansible.builtin.debug:
        msg: "once on {{ inventory_hostname }}"
      run_once: true
    - name: Delegated to the first web server
      ansible.builtin.debug:
        msg: "for {{ inventory_hostname }} on {{ groups['web-servers'][0] }}"
      delegate_to: "{{ groups['web-servers'][0] }}"
    - name: Break one
      ansible.builtin.fail:
        msg: "broken on purpose"
      when: inventory_hostname == 'fleet-02'

- name: Only the web servers
  hosts: web-servers
  gather_facts: false
  serial: 1
  tasks:
    - name: Web step
      ansible.builtin.debug:
        msg: "web step on {{ inventory_hostname }}"
"""

WEB_ONLY = """\
- name: Web only
  hosts: web-servers
  gather_facts: false
  tasks:
    - name: Web
      ansible.builtin.debug:
        msg: "web on {{ inventory_hostname }}"
"""


def _fleet(world, names, playbook_text, *, name="fleet"):
    (world.playbook_dir / f"{name}.yml").write_text(playbook_text)
    playbook_id = world.playbook(name)
    user_id = world.user()
    server_ids = [world.server(n) for n in names]
    run_id = str(uuid.uuid4())
    with world.factory.begin() as s:
        web = ServerGroup(name="web-servers", variables={"http_port": 8080})
        s.add(web)
        s.flush()
        for server_id in server_ids:
            server = s.get(Server, server_id)
            if server.hostname != "fleet-02":
                web.servers.append(server)
        jobs = [Job(playbook_id=playbook_id, server_id=sid, user_id=user_id, run_id=run_id,
                    status=JobStatus.pending, extra_vars={}) for sid in server_ids]
        s.add_all(jobs)
        s.flush()
        ids = [j.job_id for j in jobs]
    return ids


def _printed(world, job_id):
    return [r.content for r in world.logs(job_id)]


def test_a_run_on_three_servers_gives_each_job_its_own_host_result_and_lines(world,
                                                                              config_for):
    # given a launch on three servers, one of which fails a task
    ids = _fleet(world, ["fleet-01", "fleet-02", "fleet-03"], FLEET_PLAYBOOK)

    # when the worker gets one message for the run
    execute_job(ids[0], config_for(world))

    # then every job ran (one run), each ended by its own host
    jobs = {world.get(i).server.hostname: world.get(i) for i in ids}
    assert jobs["fleet-01"].status == JobStatus.success
    assert jobs["fleet-03"].status == JobStatus.success
    assert jobs["fleet-02"].status == JobStatus.failed
    assert jobs["fleet-02"].error_message == (
        "Task 'Break one' failed on fleet-02: broken on purpose")
    assert world.tickets(ids[1]) and not world.tickets(ids[0])
    for job_id in ids:
        job = world.get(job_id)
        rows = world.logs(job_id)
        assert [r.line_number for r in rows] == list(range(1, len(rows) + 1))
        host = job.server.hostname
        text = "\n".join(_printed(world, job_id))
        assert "TASK [Say who]" in text  # headers in every job
        others = {"fleet-01", "fleet-02", "fleet-03"} - {host}
        assert all(f"ok: [{o}]" not in text for o in others)  # never another host's result
        assert re.search(rf"^{host}\s+: ok=", text, re.M)  # its own recap line
        assert job.started_at <= job.completed_at
        assert set(job.recap["hosts"]) == {host}
    # group and host variables reach the run as under ansible-playbook
    one = "\n".join(_printed(world, ids[0]))
    assert "fleet-01 port=8080 web=fleet-01,fleet-03" in one
    two = "\n".join(_printed(world, ids[1]))
    assert "fleet-02 port=none" in two
    # one Ansible play over every host of the run, not one per server
    for job_id in ids:
        assert "play hosts fleet-01,fleet-02,fleet-03" in "\n".join(_printed(world, job_id))
    assert "for fleet-03 on fleet-01" in "\n".join(_printed(world, ids[2]))
    # run_once ran once for the whole run, serial web play on the web servers only
    onces = sum('"msg": "once on ' in "\n".join(_printed(world, i)) for i in ids)
    assert onces == 1
    assert "web step on fleet-03" in "\n".join(_printed(world, ids[2]))


def test_a_play_that_matches_none_of_the_targets_fails_the_job_saying_so(world, config_for):
    # given a playbook for `web-servers` launched on a server outside that group
    ids = _fleet(world, ["fleet-01", "fleet-02"], WEB_ONLY, name="webonly")

    execute_job(ids[0], config_for(world))

    # then the web server succeeds and the other fails naming the pattern and the targets
    web, other = world.get(ids[0]), world.get(ids[1])
    assert web.status == JobStatus.success
    assert "web on fleet-01" in "\n".join(_printed(world, ids[0]))
    assert other.status == JobStatus.failed
    assert other.error_message.startswith("No play ran on fleet-02")
    assert "fleet-01, fleet-02" in other.error_message


def test_the_results_match_plain_ansible_playbook_with_the_same_inventory(world, config_for,
                                                                          tmp_path):
    # given a fleet launch and the same inventory written for plain ansible-playbook
    names = ["fleet-01", "fleet-02", "fleet-03"]
    ids = _fleet(world, names, FLEET_PLAYBOOK)
    with world.factory() as s:
        servers = list(s.scalars(select(Server).where(Server.hostname.in_(names))
                                 .order_by(Server.hostname)))
        inventory = build_run_inventory(s, servers, local_python=sys.executable).data
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))

    # when both run
    execute_job(ids[0], config_for(world))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}
    plain = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(path), "--limit",
         ",".join(names), str(world.playbook_dir / "fleet.yml")],
        capture_output=True, text=True, env=env, timeout=120)

    # then every host printed the same messages under both
    def messages(text: str) -> set[str]:
        return set(re.findall(r'"msg": "([^"]*)"', text))

    playbot = set().union(*(messages("\n".join(_printed(world, i))) for i in ids))
    assert playbot == messages(plain.stdout)
    assert plain.returncode != 0 and world.get(ids[1]).status == JobStatus.failed


def test_a_run_waits_while_one_of_its_servers_runs_another_job_then_runs_whole(world,
                                                                                config_for):
    # given a run on two servers, one of which is busy with another job
    from core import execution

    ids = _fleet(world, ["fleet-01", "fleet-02"], WEB_ONLY.replace("web-servers", "all"),
                 name="both")
    busy = world.job("ok", server="fleet-02", slack_message=False)
    with world.factory() as s:
        execution.try_claim(s, busy)
        s.commit()
    deferred: list[str] = []

    # when the worker gets the run's message, then again once the other job ended
    execute_job(ids[0], config_for(world), defer=lambda job_id, delay: deferred.append(job_id))
    waiting = [world.get(i).status for i in ids]
    with world.factory() as s:
        execution.finish(s, busy, JobStatus.success)
        s.commit()
    execute_job(ids[0], config_for(world))

    # then nothing of the run started while the server was busy; afterwards all of it ran
    assert waiting == [JobStatus.pending, JobStatus.pending] and deferred == [ids[0]]
    assert [world.get(i).status for i in ids] == [JobStatus.success, JobStatus.success]


def test_cancelling_one_job_of_a_running_run_stops_the_whole_run(sqlite_world, config_for,
                                                                  tmp_path):
    # given a run on two servers that is running a long task
    import threading
    import time

    from core.jobs import cancel
    from db.models import Role, User

    world = sqlite_world
    marker = tmp_path / "marker"
    slow = (Path(__file__).parents[1] / "workers" / "playbooks" / "slow.yml").read_text()
    ids = _fleet(world, ["fleet-01", "fleet-02"], slow, name="slowfleet")
    for job_id in ids:
        world.set(job_id, extra_vars={"marker": str(marker), "seconds": "60"})
    runner = threading.Thread(target=lambda: execute_job(ids[0], config_for(world)))
    runner.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    # when an admin cancels the second server's job
    with world.factory.begin() as s:
        admin = User(username="root", role=Role.admin)
        s.add(admin)
        s.flush()
        cancel(s, admin, ids[1])
    runner.join(40)

    # then the whole run stopped: both jobs end cancelled, soon
    assert not runner.is_alive()
    assert [world.get(i).status for i in ids] == [JobStatus.cancelled, JobStatus.cancelled]
