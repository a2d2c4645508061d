"""Top-level process commands: `playbot web`, `socket`, `worker`, `console` (being written)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the process commands to the root app."""
