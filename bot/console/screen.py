"""The terminal the console draws on: one lock, a prompt that survives live output, a transcript.

Slack activity arrives on other threads (the fake Slack's request threads) while the user
may be typing at the prompt. `Screen.show(lines)` takes the lock, clears the prompt line,
prints the lines, and puts the prompt and what the user had typed so far back, so drawing
and typing never garble each other. Plain `input()` with readline is enough for that.

Everything shown is also kept (without colours) in a `Transcript`, which script mode reads
to check `expect` lines and which tests can read too.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from bot.console.markup import Style, strip_ansi

try:  # readline gives the prompt line editing and history; absent on some platforms
    import readline
except ImportError:  # pragma: no cover - Windows without pyreadline
    readline = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Mark:
    """A position in the transcript: "what was shown after this point"."""

    index: int


class Transcript:
    """Every line shown so far (colours stripped), with a way to wait for a line to appear."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()

    def add(self, lines: list[str]) -> None:
        with self._changed:
            self._lines.extend(strip_ansi(line) for line in lines)
            self._changed.notify_all()

    def mark(self) -> Mark:
        with self._changed:
            return Mark(len(self._lines))

    def since(self, mark: Mark | None = None) -> list[str]:
        with self._changed:
            return list(self._lines[mark.index if mark else 0:])

    def text(self, mark: Mark | None = None) -> str:
        return "\n".join(self.since(mark))

    def wait_for(self, needle: str, mark: Mark | None = None, timeout: float = 10.0) -> bool:
        """Wait until `needle` (case-insensitive) was shown after `mark`; False on timeout."""
        wanted = needle.lower()
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                shown = "\n".join(self._lines[mark.index if mark else 0:]).lower()
                if wanted in shown:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(timeout=min(left, 0.5))


class Screen:
    """Output to a terminal (or a pipe), safe to call from any thread."""

    def __init__(self, out: TextIO | None = None, style: Style | None = None,
                 interactive: bool = False) -> None:
        self.out = out or sys.stdout
        self.style = style or Style.for_stream(self.out)
        self.interactive = interactive
        self.transcript = Transcript()
        self.last_output = time.monotonic()
        self._lock = threading.RLock()
        self._prompt: str | None = None
        self.last_tag: object = None  # what the last lines shown belonged to (see show)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def show(self, lines: list[str] | str, tag: object = None) -> None:
        """Print `lines` above the prompt (if one is active), keeping the user's typing.

        tag: what the lines belong to (e.g. a thread), so the next caller can tell whether
        it continues the same thing (`last_tag`) or needs a heading.
        """
        if isinstance(lines, str):
            lines = lines.splitlines() or [""]
        with self._lock:
            self.last_tag = tag
            prompt = self._prompt if self.interactive else None
            if prompt is not None:
                self.out.write("\r\x1b[2K")
            for line in lines:
                self.out.write(line + "\n")
            self.transcript.add(lines)
            self.last_output = time.monotonic()
            if prompt is not None:
                typed = readline.get_line_buffer() if readline is not None else ""
                self.out.write(prompt + typed)
            self.out.flush()

    def echo(self, line: str) -> None:
        """Show what the user typed (script mode), as it would look at the prompt."""
        self.show(self.style.dim(line))

    def ask(self, prompt: str) -> str:
        """Read one line at `prompt` while live output keeps flowing above it.

        Raises EOFError at the end of input and KeyboardInterrupt on Ctrl-C.
        """
        with self._lock:
            self._prompt = prompt
        try:
            line = input(_readline_safe(prompt) if readline is not None else prompt)
        finally:
            with self._lock:
                self._prompt = None
        with self._lock:
            self.last_tag = None
        self.transcript.add([strip_ansi(prompt) + line])
        return line


def _readline_safe(prompt: str) -> str:
    """Wrap ANSI escapes in \\001/\\002 so readline measures the prompt's width right."""
    out = []
    inside = False
    for char in prompt:
        if char == "\x1b" and not inside:
            out.append("\x01")
            inside = True
        out.append(char)
        if inside and char.isalpha():
            out.append("\x02")
            inside = False
    return "".join(out)
