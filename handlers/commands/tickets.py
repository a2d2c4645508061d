"""`/tickets [show <id>|take <id>|assign <id> @user|resolve <id> <note>|close <id>|
approve <id>|reject <id> <reason>]` — the queue and its work."""

from __future__ import annotations

from slack_bolt import App

from core.errors import InvalidInput
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import parse_user, split_words, unknown
from handlers.ticket_views import (
    approve_request,
    assign_ticket,
    close_ticket,
    list_queue,
    reject_request,
    resolve_ticket,
    show_ticket,
    take_ticket,
)
from slackui import ids

USAGE = ("/tickets [show <id>|take <id>|assign <id> @user|resolve <id> <note>|close <id>|"
         "approve <id>|reject <id> <reason>]")
SUBCOMMANDS = ("show", "take", "assign", "resolve", "close", "approve", "reject")


def tickets_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words or words[0].lower() in ("list", "queue", "open"):
        list_queue(ctx)
        return
    sub, rest = words[0].lower(), words[1:]
    if sub not in SUBCOMMANDS:
        raise unknown(words[0], SUBCOMMANDS, "subcommand", USAGE)
    if not rest:
        example = "resolve 3f2a9c1e restarted nginx" if sub == "resolve" else f"{sub} 3f2a9c1e"
        raise InvalidInput(f"Which ticket? e.g. `/tickets {example}`. `/tickets` lists them.")
    ref = rest[0]
    raw = ctx.text.split(None, 2)  # the note as typed, quotes and spacing kept
    note = raw[2].strip() if len(raw) > 2 else ""
    if sub == "show":
        show_ticket(ctx, ref)
    elif sub == "take":
        take_ticket(ctx, ref)
    elif sub == "assign":
        who = parse_user(rest[1]) if len(rest) > 1 else None
        if who is None:
            raise InvalidInput(f"To whom? `/tickets assign {ref} @user`.")
        assign_ticket(ctx, ref, who)
    elif sub == "resolve":
        if not note:
            raise InvalidInput("A resolution note is required: "
                               f"`/tickets resolve {ref} <what fixed it>`.")
        resolve_ticket(ctx, ref, note)
    elif sub == "close":
        close_ticket(ctx, ref)
    elif sub == "approve":
        approve_request(ctx, ref)
    else:
        if not note:
            raise InvalidInput("A rejection needs a reason: "
                               f"`/tickets reject {ref} <why>`.")
        reject_request(ctx, ref, note)


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_TICKETS, tickets_command)
