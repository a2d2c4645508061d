"""Uniform `--help` for every `playbot` command: one metavar style, no types on flags.

Typer labels every parameter with its Python type (`<str>`, `<bool>`, `{name}`), which
reads as noise on flags that take no value and hides an option's choices. `tidy` walks the
command tree Typer builds (Click's public interface: `params`, `metavar`, `commands`,
`get_help_option`) and names each value in one style: `NAME` for arguments and options
(a command whose option takes one of a few words says so in its own metavar, e.g.
`{viewer|operator|admin}`), nothing for a flag.
"""

from __future__ import annotations

from typing import Any

import typer


def tidy(command: Any) -> Any:
    """Give every parameter of `command` and its sub-commands a metavar; returns `command`."""
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        else:
            param.metavar = (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    return command
