"""The shipped examples really run with plain Ansible on this machine, as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = pytest.mark.slow


def run(tmp_path: Path, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote"), "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(EXAMPLES / "inventory.yml"),
         str(EXAMPLES / "playbooks" / playbook), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False)


def test_ping_succeeds_on_both_example_servers(tmp_path):
    result = run(tmp_path, "ping.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "local                      : ok=3" in result.stdout
    assert "prod-local                 : ok=3" in result.stdout


def test_fail_fails_at_the_disk_space_check_with_a_clear_message(tmp_path):
    result = run(tmp_path, "fail.yml", "--limit", "local")

    assert result.returncode == 2
    assert "TASK [Check disk space]" in result.stdout
    assert "Disk almost full on local" in result.stdout
    assert "Never reached" not in result.stdout


def test_deploy_echoes_its_declared_variables(tmp_path):
    result = run(tmp_path, "deploy.yml", "--limit", "local",
                 "-e", "version=1.4.2", "-e", "color=green", "-e", "replicas=3")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "deploying release 1.4.2 to the green slot with 3 replicas" in result.stdout
    assert "replica 3 of 3 (green) runs release 1.4.2" in result.stdout


def test_deploy_without_a_version_stops_with_advice(tmp_path):
    result = run(tmp_path, "deploy.yml", "--limit", "local")

    assert result.returncode == 2
    assert "give a release version such as version=1.4.2" in result.stdout


def test_slow_is_valid_and_takes_twelve_five_second_steps(tmp_path):
    result = run(tmp_path, "slow.yml", "--syntax-check")
    [play] = yaml.safe_load((EXAMPLES / "playbooks" / "slow.yml").read_text())
    [steps] = [t for t in play["tasks"] if "loop" in t]

    assert result.returncode == 0, result.stderr
    assert steps["ansible.builtin.command"] == "sleep 5"
    assert steps["loop"] == "{{ range(1, 13) | list }}"
