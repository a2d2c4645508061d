"""`/playbot help | stats | whoami | history [@user]`, and `/playbot <command> …` for the rest.

Every other command also works as a `/playbot` subcommand (`/playbot run ping web-01`,
`/playbot jobs failed`), so people who remember one command reach everything. A mistyped
subcommand gets the closest ones and the help.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.suggestions import closest
from handlers.chat import Action, perform
from handlers.commands import audit, catalog, jobs, run_playbook, tickets, tokens
from handlers.deps import Deps
from handlers.listeners import Ctx, Handler, on_command
from handlers.parsing import parse_user, split_words
from slackui import ids
from slackui.help import help_blocks

OWN = ("help", "stats", "whoami", "history")
DELEGATED: dict[str, Handler] = {
    "run": run_playbook.run_playbook,
    "run-playbook": run_playbook.run_playbook,
    "jobs": jobs.jobs_command,
    "job": jobs.job_command,
    "cancel": jobs.cancel_command,
    "cancel-job": jobs.cancel_command,
    "tickets": tickets.tickets_command,
    "servers": catalog.servers_command,
    "playbooks": catalog.playbooks_command,
    "audit": audit.audit_command,
    "tokens": tokens.tokens_command,
}


def playbot_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    sub = words[0].lower().lstrip("/") if words else "help"
    if sub in ("help", "?", "commands"):
        show_help(ctx)
    elif sub == "stats":
        jobs.show_stats(ctx)
    elif sub in ("whoami", "me"):
        whoami(ctx)
    elif sub == "history":
        jobs.show_history(ctx, parse_user(words[1]) if len(words) > 1 else None)
    elif sub in DELEGATED:
        rest = ctx.text.split(None, 1)
        DELEGATED[sub](replace(ctx, body={**ctx.body, "text": rest[1] if len(rest) > 1 else ""}))
    else:
        names = [*OWN, *DELEGATED]
        raise InvalidInput(f"`{words[0]}` is not a Playbot command. `/playbot help` lists them.",
                           suggestions=closest(sub, names))


def show_help(ctx: Ctx) -> None:
    action = Action("help", "command", ids.CMD_PLAYBOT)
    user = perform(ctx.deps, ctx.caller, action, lambda session, user: user)
    ctx.reply.ephemeral("Playbot commands", help_blocks(role=user.role.value))


def whoami(ctx: Ctx) -> None:
    action = Action("whoami", "user")

    def work(session: Session, user: Any) -> Any:
        action.resource_id = user.username
        return user

    user = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"You are *{user.username}*, role *{user.role.value}*."
                        + ("" if user.role.value != "viewer" else
                           " Viewers read everything; ask an admin for the operator role to "
                           "run playbooks."))


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_PLAYBOT, playbot_command)
