"""`/schedules`: list schedules with their next runs; add, pause, resume, remove, approve.

    /schedules add nightly deploy-web cron "0 3 * * 1-5" Europe/Paris --missed=once
    /schedules add xmas deploy-web at 2026-12-24 18:00 Europe/Paris
    /schedules pause|resume|remove <name>        (its owner or an admin)
    /schedules approve <name>                    (an admin other than the owner)

The rules are `core.schedules`; the clock fires them (`workers.schedules`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core import permissions
from core import schedules as core_schedules
from core.errors import InvalidInput
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import split_words, unknown
from slackui import ids
from slackui.blocks import escape
from slackui.schedules import USAGE, schedule_list_blocks

SUBCOMMANDS = ("list", "add", "pause", "resume", "remove", "approve")


def schedules_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words or words[0].lower() == "list":
        list_schedules(ctx)
        return
    sub, rest = words[0].lower(), words[1:]
    if sub == "add":
        add_schedule(ctx, rest)
    elif sub in ("pause", "resume", "remove", "approve"):
        if len(rest) != 1:
            raise InvalidInput(f"Which schedule? e.g. `/schedules {sub} nightly`.")
        change_schedule(ctx, sub, rest[0])
    else:
        raise unknown(sub, SUBCOMMANDS, "subcommand", "/schedules [add|pause|resume|remove|"
                                                       "approve] ...")


def list_schedules(ctx: Ctx) -> None:
    action = Action("schedules.list", "schedule")

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.JOB_VIEW)
        rows = []
        for schedule in core_schedules.list_schedules(session):
            row = core_schedules.describe(session, schedule)
            row["next"] = core_schedules.local_text(schedule, schedule.next_run_at)
            rows.append(row)
        return rows

    ctx.reply.ephemeral("Schedules", schedule_list_blocks(perform(ctx.deps, ctx.caller,
                                                                  action, work)))


def parse_add(words: list[str]) -> dict[str, Any]:
    """`<name> <template> cron "<expr>" [zone] [--missed=...]` or `<name> <template> at
    <date> <time> [zone] [--missed=...]` as add_schedule's keywords."""
    missed = "skip"
    rest = []
    for word in words:
        if word.startswith("--missed="):
            missed = word.partition("=")[2]
        elif word.startswith("--"):
            raise unknown(word, ["--missed="], "option", USAGE)
        else:
            rest.append(word)
    if len(rest) < 4 or rest[2].lower() not in ("cron", "at"):
        raise InvalidInput(f"Usage: {USAGE}")
    name, template, kind, *more = rest
    spec: dict[str, Any] = {"name": name, "template": template, "missed": missed}
    if kind.lower() == "cron":
        spec["cron"], tail = more[0], more[1:]
    else:
        if len(more) < 2:
            raise InvalidInput("Give a date and a time: `at 2026-12-24 18:00 [Time/Zone]`.")
        spec["run_at"], tail = " ".join(more[:2]), more[2:]
    if len(tail) > 1:
        raise InvalidInput(f"I could not read `{' '.join(tail)[:60]}`. Usage: {USAGE}")
    spec["timezone_name"] = tail[0] if tail else "UTC"
    return spec


def add_schedule(ctx: Ctx, words: list[str]) -> None:
    spec = parse_add(words)
    action = Action("schedule.add", "schedule", spec["name"], audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        schedule = core_schedules.add_schedule(session, user, channel_id=ctx.caller.channel_id,
                                               request=ctx.caller.request, **spec)
        return (schedule.name, core_schedules.local_text(schedule, schedule.next_run_at),
                core_schedules.state(session, schedule))

    name, upcoming, state = perform(ctx.deps, ctx.caller, action, work)
    extra = (" It runs on production: an admin other than you must approve it first "
             f"(`/schedules approve {escape(name)}`)." if state == "awaiting approval" else "")
    ctx.reply.ephemeral(f":alarm_clock: Schedule *{escape(name)}* added; next run "
                        f"{escape(upcoming)}. Its runs post in this channel.{extra}")


def change_schedule(ctx: Ctx, sub: str, name: str) -> None:
    action = Action(f"schedule.{sub}", "schedule", name, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        request = ctx.caller.request
        if sub == "approve":
            schedule = core_schedules.approve_schedule(session, user, name, request=request)
        elif sub == "remove":
            schedule = core_schedules.remove_schedule(session, user, name, request=request)
            return schedule.name, ""
        else:
            schedule = core_schedules.set_paused(session, user, name, sub == "pause",
                                                 request=request)
        return schedule.name, core_schedules.local_text(schedule, schedule.next_run_at)

    done, upcoming = perform(ctx.deps, ctx.caller, action, work)
    said = {"pause": f":double_vertical_bar: Schedule *{escape(done)}* is paused.",
            "resume": f":arrow_forward: Schedule *{escape(done)}* resumed; next run "
                      f"{escape(upcoming)}.",
            "remove": f":wastebasket: Removed schedule *{escape(done)}*.",
            "approve": f":white_check_mark: Schedule *{escape(done)}* is approved for its "
                       "template as it is now; any change to it suspends the schedule until "
                       f"approved again. Next run {escape(upcoming)}."}
    ctx.reply.ephemeral(said[sub])


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_SCHEDULES, schedules_command)
