"""The interactive console: a prompt (`alice (admin)> `) over a live view of the workspace.

Lines are read with `input()` (readline gives editing and history); Slack activity is drawn
above the prompt as it happens (`Screen` keeps the two from garbling each other). Ctrl-C
clears the line being typed; Ctrl-D or `quit` leaves.
"""

from __future__ import annotations

from bot.console.screen import Screen
from bot.console.session import ConsoleSession


def run_repl(session: ConsoleSession, screen: Screen) -> int:
    """Read and handle lines until the user leaves; return the exit code (0)."""
    while True:
        try:
            line = screen.ask(session.prompt())
        except EOFError:
            screen.show("")
            return 0
        except KeyboardInterrupt:
            screen.show("^C")
            continue
        try:
            result = session.handle(line, screen.ask)
        except KeyboardInterrupt:
            screen.show(screen.style.dim("  (interrupted)"))
            continue
        except EOFError:
            return 0
        if result.quit:
            return 0
