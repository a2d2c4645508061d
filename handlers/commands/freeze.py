"""`/freeze` lists change freeze windows; `/freeze add ...` and `/freeze end <id>` (admins).

    /freeze add production fri 16:00 mon 08:00 Europe/Paris Weekend freeze
    /freeze add all 2026-12-24 18:00 2026-12-27 08:00 Europe/Paris Holidays
    /freeze end 3

The time zone is optional (UTC); the rest of the text is the reason shown to whoever is
refused. The rules are `core.freezes`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core import freezes, permissions
from core.errors import InvalidInput
from db.base import utcnow
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import split_words, unknown
from slackui import ids
from slackui.blocks import escape
from slackui.freezes import USAGE, freeze_list_blocks


def freeze_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words or words[0].lower() == "list":
        list_freezes(ctx)
    elif words[0].lower() == "add":
        add_freeze(ctx, words[1:])
    elif words[0].lower() == "end":
        if len(words) != 2:
            raise InvalidInput("Which window? e.g. `/freeze end 3` (`/freeze` lists them).")
        end_freeze(ctx, words[1])
    else:
        raise unknown(words[0], ("list", "add", "end"), "subcommand")


def list_freezes(ctx: Ctx) -> None:
    action = Action("freezes.list", "freeze")
    now = utcnow()

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.SERVER_VIEW)
        rows = []
        for window in freezes.list_windows(session, now):
            ends = freezes.in_force(window, now)
            until = freezes.ends_text(freezes.FreezeHit(window, ends)) if ends else None
            rows.append((freezes.describe(window), until))
        return rows

    rows = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Change freezes", freeze_list_blocks(rows, now=now))


def parse_add(words: list[str]) -> dict[str, Any]:
    """`<env> <from: 2 words> <to: 2 words> [Time/Zone] <reason...>` as add_window's keywords."""
    if len(words) < 6:
        raise InvalidInput(f"Usage: {USAGE}")
    env, start, end, rest = words[0], " ".join(words[1:3]), " ".join(words[3:5]), words[5:]
    tz = "UTC"
    if rest and ("/" in rest[0] or rest[0].upper() == "UTC"):
        tz, rest = rest[0], rest[1:]
    return {"environment": env, "start": start, "end": end, "timezone_name": tz,
            "reason": " ".join(rest)}


def add_freeze(ctx: Ctx, words: list[str]) -> None:
    spec = parse_add(words)
    action = Action("freeze.add", "freeze", audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        window = freezes.add_window(session, user, request=ctx.caller.request, **spec)
        return freezes.describe(window)

    data = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f":snowflake: Freeze *#{data['id']}* added: launches against "
                        f"{escape(data['environment'])} are refused "
                        f"{'every week ' if data['kind'] == 'weekly' else ''}from "
                        f"{escape(data['from'])} to {escape(data['to'])} "
                        f"{escape(data['timezone'])} — {escape(data['reason'])}")


def end_freeze(ctx: Ctx, ref: str) -> None:
    action = Action("freeze.end", "freeze", ref, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        return freezes.describe(freezes.end_window(session, user, ref,
                                                   request=ctx.caller.request))

    data = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f":sunny: Freeze *#{data['id']}* ({escape(data['environment'])}: "
                        f"{escape(data['reason'])}) has ended; launches are allowed again.")


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_FREEZE, freeze_command)
