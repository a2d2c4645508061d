"""Script mode: `playbot console --script FILE` (or `-` for stdin) runs lines without a person.

Each line is what a person would type at the prompt (see `bot.console.session` for the
directives `wait`, `expect` and `as`). Lines are echoed with the prompt they were typed at,
so the output reads like a transcript. Answers to a modal's questions are the lines that
follow the command that opened it, one line per question (an empty line keeps the default).

The run stops at the first failing step and returns 1; 0 when every step passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bot.console.screen import Screen
from bot.console.session import ConsoleSession


@dataclass
class ScriptLine:
    number: int
    text: str


class ScriptReader:
    """Hands out a script's lines: as steps, and as answers to a modal's questions."""

    def __init__(self, lines: list[str], screen: Screen) -> None:
        self._lines: Iterator[ScriptLine] = iter(
            ScriptLine(number, text.rstrip("\n")) for number, text in enumerate(lines, 1))
        self.screen = screen
        self.current = 0

    def next_step(self) -> ScriptLine | None:
        for line in self._lines:
            self.current = line.number
            stripped = line.text.strip()
            if stripped and not stripped.startswith("#"):
                return line
        return None

    def answer(self, prompt: str) -> str:
        """The next line as the answer to a form's question (EOFError when none is left)."""
        for line in self._lines:
            self.current = line.number
            if line.text.strip().startswith("#"):
                continue
            self.screen.echo(prompt + line.text.strip())
            return line.text.strip()
        raise EOFError


def run_script(session: ConsoleSession, screen: Screen, lines: list[str], name: str) -> int:
    """Run `lines` as steps; return 0 when all passed, 1 at the first failure."""
    reader = ScriptReader(lines, screen)
    style = screen.style
    while (line := reader.next_step()) is not None:
        screen.echo(session.prompt() + line.text.strip())
        try:
            result = session.handle(line.text, reader.answer)
        except EOFError:
            result = None
            screen.show(style.red(f"✗ {name}:{reader.current}: the script ended inside a form"))
            return 1
        if not result.ok:
            screen.show(style.red(f"✗ {name}:{line.number}: {result.reason}"))
            return 1
        if result.quit:
            break
    final = session.finish()
    if not final.ok:
        screen.show(style.red(f"✗ {name}:{reader.current}: {final.reason}"))
        return 1
    screen.show(style.bold("✓ script passed") + style.dim(f" ({name})"))
    return 0
