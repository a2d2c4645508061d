"""Fixtures for the console tests: `playbot console` run as a real process on a fresh SQLite
database, with the shipped examples (examples/playbooks, examples/inventory.yml), either on a
pseudo-terminal (pexpect) or in script mode.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOT = Path(sys.executable).with_name("playbot")
STEP_TIMEOUT = 60  # one playbook run, on a busy 2-core machine


def console_command() -> list[str]:
    """How to start `playbot` from this test run's Python."""
    if PLAYBOT.exists():
        return [str(PLAYBOT)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


@pytest.fixture
def console_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a console on its own fresh database, with the repo's examples."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SLACK_", "PLAYBOT_", "REDIS_URL", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}",
        "PLAYBOOK_DIR": str(REPO / "examples" / "playbooks"),
        "PLAYBOT_RUNTIME_DIR": str(tmp_path / "var" / "runs"),
        "PLAYBOT_ARCHIVE_DIR": str(tmp_path / "var" / "archive"),
        "PYTHONPATH": str(REPO),
        "NO_COLOR": "1",
        "TERM": "xterm",
    })
    return env


class Console:
    """`playbot console` on a pseudo-terminal, driven like a person would."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        command = console_command()
        self.child = pexpect.spawn(command[0], [*command[1:], "console", *args], env=env,
                                   cwd=str(cwd), encoding="utf-8", timeout=STEP_TIMEOUT,
                                   dimensions=(50, 160))
        self.transcript: list[str] = []
        self.child.logfile_read = _Collect(self.transcript)

    def expect(self, pattern: str, timeout: float | None = None) -> re.Match[str]:
        """Wait for `pattern` (a regex) in the output; return its match."""
        self.child.expect(pattern, timeout=timeout if timeout is not None else STEP_TIMEOUT)
        return self.child.match

    def expect_all(self, *patterns: str, timeout: float | None = None) -> None:
        """Wait until every pattern has been shown, in whatever order they come."""
        waiting = list(patterns)
        while waiting:
            index = self.child.expect(waiting, timeout=timeout if timeout is not None
                                      else STEP_TIMEOUT)
            waiting.pop(index)

    def prompt(self, who: str) -> None:
        """Wait for the prompt of `who`, e.g. "alice (admin)"."""
        self.expect(re.escape(f"{who}> "))

    def type(self, line: str) -> None:
        self.child.sendline(line)

    def button(self, label: str) -> int:
        """The number of the next button labelled `label` shown from here on."""
        return int(self.expect(r"\[(\d+) " + re.escape(label) + r"\]").group(1))

    def quit(self) -> int:
        self.type("quit")
        self.child.expect(pexpect.EOF, timeout=30)
        self.child.close()
        return self.child.exitstatus

    @property
    def output(self) -> str:
        return "".join(self.transcript)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


class _Collect:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, data: str) -> None:
        self.sink.append(data)

    def flush(self) -> None:
        pass


@pytest.fixture
def start_console(console_env: dict[str, str], tmp_path: Path) -> Iterator:
    """`start_console("--as", "bob")` → a Console on a pty; stopped after the test."""
    consoles: list[Console] = []

    def start(*args: str) -> Console:
        console = Console(console_env, tmp_path, *args)
        consoles.append(console)
        return console

    yield start
    for console in consoles:
        console.close()


@pytest.fixture
def run_script(console_env: dict[str, str], tmp_path: Path):
    """`run_script(text_or_path)` → the finished `playbot console --script` process."""

    def run(script: str | Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        path = script if isinstance(script, Path) else tmp_path / "script.txt"
        if not isinstance(script, Path):
            path.write_text(script)
        return subprocess.run([*console_command(), "console", "--script", str(path), *args],
                              env=console_env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, check=False)

    return run
