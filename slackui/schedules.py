"""Schedules in Slack: `/schedules` lists them with their next runs and state.

Names and expressions are user text: escaped, never Slack markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slackui.blocks import Block, context, escape, header, section
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks

STATE_EMOJI = {"active": ":large_green_circle:", "paused": ":double_vertical_bar:",
               "awaiting approval": ":raised_hand:", "suspended": ":no_entry:",
               "done": ":white_check_mark:"}
USAGE = ("`/schedules add <name> <template> cron \"0 3 * * 1-5\" [Time/Zone] "
         "[--missed=skip|once]` · `/schedules add <name> <template> at 2026-12-24 18:00 "
         "[Time/Zone]` · `/schedules pause|resume|remove|approve <name>`")


def schedule_line(row: Mapping[str, Any]) -> str:
    when = (f"cron `{escape(row['cron'])}`" if row["cron"] else "once") + \
        f" {escape(row['timezone'])}"
    approved = f" · approved by @{escape(row['approved_by'])}" if row["approved_by"] else ""
    return (f"{STATE_EMOJI.get(row['state'], '')} *{escape(row['name'])}* · template "
            f"*{escape(row['template'])}* · {when} · next: {escape(row['next'])} · "
            f"{row['state']} · missed runs: {row['missed']} · @{escape(row['owner'])}"
            f"{approved}")


def schedule_list_blocks(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    blocks: list[Block] = [header("Schedules")]
    if not rows:
        blocks.append(section("No schedules yet."))
    for row in rows[:40]:
        blocks.append(section(schedule_line(row)))
    blocks.append(context(escape(USAGE)))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
