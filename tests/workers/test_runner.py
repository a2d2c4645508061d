"""workers.runner: real ansible-runner on localhost; values are data, never templates; a
run ends whole (cancel, timeout, an expired lease, an exception), leaving nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from workers.lease import Lease
from workers.runner import (
    FENCED_MESSAGE,
    HostSpec,
    RunSpec,
    inventory,
    run_playbook,
    unsafe_extravars_yaml,
)

LOCAL = HostSpec(name="local", local=True, groups=("test", "development"))


def _run(playbook_dir: Path, tmp_path: Path, name: str, **spec: object):
    events: list[dict] = []
    result = run_playbook(
        RunSpec(job_id=f"job-{name}", playbook_path=playbook_dir / f"{name}.yml", host=LOCAL,
                runtime_dir=tmp_path / "runs", **spec),
        on_event=events.append, should_cancel=lambda: False)
    stdout = "\n".join(e["stdout"] for e in events if e.get("stdout"))
    return result, stdout


def test_jinja_in_variable_values_stays_literal_and_runs_nothing(playbook_dir, tmp_path):
    pwned = tmp_path / "pwned"
    attack = "{{ lookup('pipe', 'id') }}"
    touch = "{{ lookup('pipe', 'touch " + str(pwned) + "') }}"
    out_file = tmp_path / "text.out"

    result, stdout = _run(playbook_dir, tmp_path, "echo_vars", extra_vars={
        "text": attack,
        "items": ["plain", touch, {"deep": [attack]}],
        "mapping": {"key": touch, "nested": {"again": attack}},
        "out_file": str(out_file),
    })

    assert result.status == "success", result.error_message
    assert out_file.read_text() == attack  # the value itself, not its rendering
    assert not pwned.exists()
    assert "uid=" not in stdout
    assert stdout.count("lookup('pipe', 'id')") == 3
    assert stdout.count("lookup('pipe', 'touch") == 2


def test_extra_vars_are_written_with_the_unsafe_tag_at_every_depth():
    text = unsafe_extravars_yaml({"a": "x", "b": ["y", {"c": "z"}], "n": 3, "t": True})

    assert text.count("!unsafe") == 3
    assert "n: 3" in text and "t: true" in text


def test_a_failing_task_names_the_task_the_host_and_the_message(playbook_dir, tmp_path):
    result, _ = _run(playbook_dir, tmp_path, "fail")

    assert result.status == "failed"
    assert result.error_message == (
        "Task 'Check disk space' failed on local: disk almost full: 97% used on /")
    assert result.progress.hosts["local"]["failed"] == 1
    assert result.progress.hosts["local"]["ok"] == 1
    assert result.progress.final


def test_a_successful_run_reports_the_recap_per_host(playbook_dir, tmp_path):
    result, stdout = _run(playbook_dir, tmp_path, "ok")

    assert result.status == "success"
    assert result.recap["hosts"]["local"]["changed"] == 1
    assert result.recap["tasks"] == 3
    assert "hello from playbot" in stdout
    assert not (tmp_path / "runs" / "job-ok").exists()  # private data dir removed


def test_check_mode_runs_ansible_with_check(playbook_dir, tmp_path):
    marker = tmp_path / "marker"

    result, _ = _run(playbook_dir, tmp_path, "ok", check_mode=True,
                     extra_vars={"marker": str(marker)})

    assert result.status == "success"
    assert not marker.exists()  # shell tasks are skipped in check mode


def test_a_cancel_request_stops_the_run_within_seconds(playbook_dir, tmp_path):
    import threading
    import time

    started = threading.Event()

    def on_event(event: dict) -> None:
        if event.get("event_data", {}).get("task") == "Wait":
            started.set()

    t0 = time.monotonic()
    result = run_playbook(
        RunSpec(job_id="job-slow", playbook_path=playbook_dir / "slow.yml", host=LOCAL,
                runtime_dir=tmp_path / "runs", cancel_poll=0.2,
                extra_vars={"marker": str(tmp_path / "m"), "seconds": "31.17"}),
        on_event=on_event, should_cancel=lambda: started.is_set())

    assert result.status == "cancelled"
    assert time.monotonic() - t0 < 15
    # and nothing of the run goes on: not ansible-playbook, not the task's command
    assert not _processes_running("sleep 31.17")


def test_the_playbook_limit_ends_a_long_run_as_timed_out(playbook_dir, tmp_path):
    result, _ = _run(playbook_dir, tmp_path, "slow", timeout=2, cancel_poll=0.2,
                     extra_vars={"marker": str(tmp_path / "m"), "seconds": "31.19"})

    assert result.status == "timeout"
    assert "limit of 2 s" in result.error_message
    assert not _processes_running("sleep 31.19")


FORKING = """\
- name: Keep forking
  hosts: all
  gather_facts: false
  tasks:
    - name: Fork
      ansible.builtin.shell: |
        echo started > {{ marker }}
        while true; do setsid sleep {{ seconds }} & sleep 0.005; done
"""


@pytest.mark.slow
@pytest.mark.parametrize("container", ["pidns", "userns"])
def test_a_cancel_ends_every_process_of_the_run_even_one_forked_at_that_moment(
        playbook_dir, tmp_path, container):
    # given a task that forks a new session every few milliseconds
    (playbook_dir / "forking.yml").write_text(FORKING)
    marker = tmp_path / "m"
    seconds = {"pidns": "32.17", "userns": "32.27"}[container]

    # when its run is cancelled while it forks
    result = run_playbook(
        RunSpec(job_id="job-forking", playbook_path=playbook_dir / "forking.yml", host=LOCAL,
                runtime_dir=tmp_path / "runs", cancel_poll=0.2, container=container,
                extra_vars={"marker": str(marker), "seconds": seconds}),
        on_event=lambda _e: None, should_cancel=lambda: marker.exists() and _aged(marker, 1))

    # then not one of its forks is left
    assert result.status == "cancelled"
    assert not _processes_running(f"sleep {seconds}")


def _aged(path: Path, seconds: float) -> bool:
    import time

    return time.time() - path.stat().st_mtime > seconds


@pytest.mark.slow
def test_an_exception_out_of_the_runner_stops_the_run_before_it_propagates(playbook_dir,
                                                                          tmp_path):
    # given a run whose event handler fails once the long task has started
    class Broken(Exception):
        pass

    def on_event(event: dict) -> None:
        if event.get("event_data", {}).get("task") == "Wait":
            raise Broken("the log sink lost its database")

    # when the exception leaves ansible-runner
    with pytest.raises(Broken):
        run_playbook(
            RunSpec(job_id="job-broken", playbook_path=playbook_dir / "slow.yml", host=LOCAL,
                    runtime_dir=tmp_path / "runs", cancel_poll=0.2,
                    extra_vars={"marker": str(tmp_path / "m"), "seconds": "31.23"}),
            on_event=on_event, should_cancel=lambda: False)

    # then the playbook is not running on, and its secrets' directory is gone
    assert not _processes_running("sleep 31.23")
    assert not (tmp_path / "runs" / "job-broken").exists()


@pytest.mark.slow
def test_a_lease_nobody_renews_stops_the_run_and_says_the_worker_stalled(playbook_dir,
                                                                        tmp_path):
    import time

    # given a run whose worker renews its 2 s lease once, then stalls
    lease = Lease(2.0)
    t0 = time.monotonic()

    # when the lease runs out
    result = run_playbook(
        RunSpec(job_id="job-stalled", playbook_path=playbook_dir / "slow.yml", host=LOCAL,
                runtime_dir=tmp_path / "runs", cancel_poll=0.2,
                extra_vars={"marker": str(tmp_path / "m"), "seconds": "31.29"}),
        on_event=lambda _e: None, should_cancel=lambda: False, lease=lease)

    # then the guard stopped the run soon after, and the result says why
    assert result.status == "failed"
    assert result.error_message == FENCED_MESSAGE
    assert time.monotonic() - t0 < 15
    assert not _processes_running("sleep 31.29")


def test_without_a_container_a_cancel_still_stops_the_run(playbook_dir, tmp_path):
    # the fallback where the kernel refuses namespaces: the sweep of before
    started = tmp_path / "m"

    result = run_playbook(
        RunSpec(job_id="job-sweep", playbook_path=playbook_dir / "slow.yml", host=LOCAL,
                runtime_dir=tmp_path / "runs", cancel_poll=0.2, container="none",
                extra_vars={"marker": str(started), "seconds": "31.31"}),
        on_event=lambda _e: None, should_cancel=started.exists)

    assert result.status == "cancelled"


def _processes_running(command: str) -> list[int]:
    """Pids whose command line is `command` (the run is over: none may be left)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
            except OSError:
                continue
            if cmdline == command.encode() and not _zombie(entry):
                found.append(int(entry.name))
    return found


def _zombie(entry: Path) -> bool:
    try:
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_inventory_uses_the_server_row_and_the_workers_interpreter_for_local():
    remote = inventory(HostSpec(name="web-01", address="10.0.0.5", port=2222, user="deploy",
                                key_path="/keys/web", groups=("web", "bad-name")))
    local = inventory(LOCAL)

    assert remote["all"]["hosts"]["web-01"] == {
        "ansible_host": "10.0.0.5", "ansible_port": 2222, "ansible_user": "deploy",
        "ansible_ssh_private_key_file": "/keys/web"}
    assert set(remote["all"]["children"]) == {"web", "bad-name"}  # names Ansible accepts are kept
    assert local["all"]["hosts"]["local"] == {"ansible_connection": "local",
                                               "ansible_python_interpreter": sys.executable}
    assert yaml.safe_load(yaml.safe_dump(local)) == local
