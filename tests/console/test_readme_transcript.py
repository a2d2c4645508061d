"""The README's console transcript is what a newcomer sees: every line it shows (ids, times
and the live progress line aside) comes out of the real console, in that order."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import REPO

pytestmark = pytest.mark.slow

_VARYING = [(re.compile(r"\b[0-9a-f]{8}\b"), "<id>"),
            (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"), "<time>"),
            (re.compile(r"took \d+s"), "took <n>s")]


def _normal(line: str) -> str:
    for pattern, stand_in in _VARYING:
        line = pattern.sub(stand_in, line)
    return line.rstrip()


def readme_transcript() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("```\nalice (admin)> /run-playbook ping local", 1)[1].split("```", 1)[0]
    lines = ["alice (admin)> /run-playbook ping local", *block.splitlines()]
    # a live progress line ("↻ 🔄 … running — Tasks done: 0 …") shows whatever state the
    # worker's paced update caught: it is illustrative, the rest must come out as shown
    return [_normal(line) for line in lines
            if line.strip() and line.strip() != "…" and not line.lstrip().startswith("↻ 🔄")]


def _is_thread(line: str) -> bool:
    return line.lstrip().startswith(("│", "↳ thread of:"))


def _assert_in_order(expected_lines: list[str], shown: list[str]) -> None:
    position = 0
    for expected in expected_lines:
        try:
            position = shown.index(expected, position) + 1
        except ValueError:
            pytest.fail(f"the README shows {expected!r}, the console does not (after line "
                        f"{position}):\n" + "\n".join(shown))


def test_the_readme_transcript_is_what_the_console_shows(run_script) -> None:
    done = run_script("/run-playbook ping local\nwait job success\n")

    assert done.returncode == 0, done.stdout
    shown = [_normal(line) for line in done.stdout.splitlines()]
    expected = readme_transcript()
    # the channel's messages come in the README's order; the thread's lines come in theirs,
    # but where they fall between two redraws of the message depends on the worker's pace
    _assert_in_order([line for line in expected if not _is_thread(line)], shown)
    _assert_in_order([line for line in expected if line.lstrip().startswith("│")],
                     [line for line in shown if line.lstrip().startswith("│")])
