"""`/notify`: view and change one's own notification settings; admins route events to a
channel.

    /notify                                           my settings (and, for admins, the routes)
    /notify events=job_ended,job_failed env=production playbook=deploy to=dm
    /notify quiet=22:00-07:00 tz=Europe/Paris         nothing is sent to me then
    /notify channel #ops events=job_failed env=production      (admins)

The rules are `core.notifications`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core import notifications, permissions
from core.errors import InvalidInput
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import split_words
from slackui import ids
from slackui.notifications import settings_blocks


def parse_changes(words: list[str]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise InvalidInput(f"`{word[:40]}` is not `key=value`; e.g. "
                               "`/notify events=job_ended quiet=22:00-07:00`.")
        changes[key.strip().lower()] = value
    return changes


def notify_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if words and words[0].lower() == "channel":
        if len(words) < 3:
            raise InvalidInput("Usage: `/notify channel #channel events=job_failed "
                               "[env=production] [playbook=deploy]`.")
        route(ctx, words[1], parse_changes(words[2:]))
        return
    changes = parse_changes(words)
    action = Action("notify.update" if changes else "notify.show", "user",
                    audited_by_core=bool(changes))

    def work(session: Session, user: Any) -> Any:
        row = (notifications.update_own(session, user, changes, request=ctx.caller.request)
               if changes else notifications.settings_of(session, user))
        routes = ([notifications.describe(r) | {"channel": r.channel_id}
                   for r in notifications.routes(session)]
                  if permissions.can(user, permissions.NOTIFICATION_ROUTE) else [])
        return notifications.describe(row), routes

    mine, routes = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Your notifications", settings_blocks(mine, routes, changed=bool(changes)))


def route(ctx: Ctx, channel: str, changes: dict[str, str]) -> None:
    action = Action("notify.route", "channel", channel, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        row = notifications.set_route(session, user, channel, changes,
                                      request=ctx.caller.request)
        return notifications.describe(row) | {"channel": row.channel_id}

    data = perform(ctx.deps, ctx.caller, action, work)
    events = ", ".join(data["events"]) or "nothing"
    ctx.reply.ephemeral(f":loudspeaker: <#{data['channel']}> now gets: {events}.")


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_NOTIFY, notify_command)
