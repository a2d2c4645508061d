"""What the installed `playbot` command prints, in a process of its own: `--help` with one style
for every value's name, the choices of an option that takes one of a few words, nothing after
a flag; one-shot commands without library log lines."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _playbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        capture_output=True, text=True, timeout=60,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin", **(env or {})},
    )


def _help(*command: str) -> str:
    result = _playbot(*command, "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", [("users", "add"), ("users", "list"), ("worker",),
                                     ("servers", "add"), ("playbooks", "sync")])
def test_flags_show_no_type_and_values_are_named_in_capitals(command):
    text = _help(*command)

    assert "<bool>" not in text and "<str>" not in text.split("Options")[-1]
    assert "--help " in text


def test_the_role_and_environment_options_list_their_choices():
    assert "{viewer|operator|admin}" in _help("users", "add")
    assert "SLACK_ID" in _help("users", "add")
    assert "{production|staging|development}" in _help("servers", "add")


def test_db_current_prints_only_the_revision(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'playbot.db'}"}
    assert _playbot("db", "upgrade", env=env).returncode == 0

    result = _playbot("db", "current", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(head)")
    assert result.stderr == ""
