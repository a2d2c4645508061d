"""Direct messages to the bot (its Messages tab), answered with the command reference.

Slack sends a `message` event with `channel_type: im` for every message in the bot's DMs
(subscription `message.im`, scope `im:history`). Playbot takes its commands as slash
commands, so a person who writes to it gets the command reference for their role there,
instead of silence. Messages that are not a person's new message (the bot's own, edits,
deletions, joins: any `subtype` or `bot_id`) are ignored, so an answer never answers itself.
Reading a DM is not a chat action: it writes no audit row.
"""

from __future__ import annotations

from slack_bolt import App

from core.errors import PlaybotError
from db.session import transaction
from handlers.chat import resolve_user
from handlers.deps import Deps
from handlers.listeners import Ctx, on_event
from slackui import ids
from slackui.help import help_blocks

INTRO = ("I take commands as slash commands, typed in any channel or here: "
         "`/run-playbook`, `/jobs`, `/playbot help` and the ones below.")


def dm_received(ctx: Ctx) -> None:
    event = ctx.body.get("event") or {}
    if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id"):
        return
    channel = event.get("channel")
    if not channel:
        return
    try:
        with transaction(ctx.deps.session_factory) as session:
            role = resolve_user(session, ctx.deps, ctx.caller).role.value
    except PlaybotError as error:  # inactive, or from another workspace: say only that
        ctx.client.chat_postMessage(channel=channel, text=str(error))
        return
    ctx.client.chat_postMessage(channel=channel, text="Playbot commands",
                                blocks=help_blocks(role=role, intro=INTRO))


def register(app: App, deps: Deps) -> None:
    on_event(app, deps, ids.EVENT_MESSAGE, dm_received)
