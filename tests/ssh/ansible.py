"""Run a playbook with ansible-runner over SSH test hosts, with workers.ssh's environment:
the SSH-level harness of tests/ssh (Playbot's job-level tests go through workers.runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from tests.support.ssh_hosts import SshHost
from workers.ssh import SshOptions, ansible_ssh_env


@dataclass
class Outcome:
    """What one ansible-runner run did: per host ok / failed / unreachable, with messages."""

    status: str
    elapsed: float
    ok: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    stdout: str = ""


def run(tmp_path: Path, hosts: Sequence[SshHost], playbook: str, options: SshOptions, *,
        host_vars: Mapping[str, Mapping[str, Any]] | None = None,
        forks: int = 10, close: bool = True) -> Outcome:
    """Run `playbook` (YAML text) over `hosts` (inventory names: their `name`); with
    `close`, end the run's multiplexed master connections afterwards."""
    data = tmp_path / f"run-{time.monotonic_ns()}"
    (data / "project").mkdir(parents=True)
    (data / "project" / "site.yml").write_text(playbook)
    inventory = {"all": {"hosts": {
        h.name: {**h.inventory_vars(), **(host_vars or {}).get(h.name, {})} for h in hosts}}}
    envvars = {"ANSIBLE_NOCOLOR": "1", **ansible_ssh_env(options),
               "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}
    started = time.monotonic()
    result = ansible_runner.run(private_data_dir=str(data), playbook="site.yml",
                                inventory=json.dumps(inventory), envvars=envvars,
                                forks=forks, quiet=True, timeout=120)
    outcome = Outcome(status=result.status, elapsed=time.monotonic() - started)
    for event in result.events:
        data_ = event.get("event_data", {})
        host = data_.get("host")
        res = data_.get("res") or {}
        if event["event"] == "runner_on_unreachable":
            outcome.unreachable[host] = str(res.get("msg", ""))
        elif event["event"] == "runner_on_failed" and not data_.get("ignore_errors"):
            outcome.failed[host] = str(res.get("msg", ""))
        elif event["event"] == "playbook_on_stats":
            outcome.ok = {h for h in (data_.get("ok") or {})
                          if h not in (data_.get("failures") or {})
                          and h not in (data_.get("dark") or {})}
    outcome.stdout = result.stdout.read()
    if close:
        close_masters(options)
    return outcome


def close_masters(options: SshOptions) -> None:
    """Ask every ssh master of `options.control_dir` to exit (ssh -O exit)."""
    directory = Path(options.control_dir or "~/.ansible/cp").expanduser()
    for sock in directory.glob("*") if directory.exists() else []:
        subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"],
                       capture_output=True, timeout=10)
