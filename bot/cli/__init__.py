"""The `playbot` operator command: one Typer app, a sub-command group per module.

Every command answers bad input with a clear message on stderr and exit code 2.
"""

from __future__ import annotations

from typing import Any

import typer

from bot.cli import (
    audit_commands,
    db_commands,
    host_key_commands,
    playbook_commands,
    process_commands,
    server_commands,
    template_commands,
    token_commands,
    user_commands,
)
from bot.cli.help_text import tidy

app = typer.Typer(
    name="playbot",
    help="Playbot: run, watch, approve and audit Ansible playbooks from Slack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(user_commands.app, name="users")
host_key_commands.register(server_commands.app)  # playbot servers trust
app.add_typer(server_commands.app, name="servers")
app.add_typer(playbook_commands.app, name="playbooks")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(template_commands.app, name="templates")
app.add_typer(token_commands.app, name="tokens")
process_commands.register(app)


def command() -> Any:
    """The `playbot` Click command, its help tidied (`bot.cli.help_text`)."""
    return tidy(typer.main.get_command(app))


def main() -> None:
    command()(prog_name="playbot")
