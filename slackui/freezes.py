"""Change freeze windows in Slack: the list an admin or anyone reads with `/freeze`.

Reasons are user text: escaped, never Slack markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slackui.blocks import Block, context, escape, header, section
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks

USAGE = ("`/freeze add <production|staging|development|all> <fri 16:00> <mon 08:00> "
         "[Time/Zone] <reason>` (weekly) · `/freeze add <env> <2026-12-24 18:00> "
         "<2026-12-27 08:00> [Time/Zone] <reason>` (once) · `/freeze end <id>` (admins)")


def window_line(data: Mapping[str, Any], in_force_until: str | None) -> str:
    when = ("every week " if data["kind"] == "weekly" else "") + (
        f"{escape(data['from'])} → {escape(data['to'])} {escape(data['timezone'])}")
    now = f" · :snowflake: *in force* until {escape(in_force_until)}" if in_force_until else ""
    return (f"*#{data['id']}* · {escape(data['environment'])} · {when}{now}\n"
            f"{escape(data['reason'])}")


def freeze_list_blocks(windows: Sequence[tuple[Mapping[str, Any], str | None]], *,
                       now: datetime) -> list[Block]:
    """The windows (plain data from `core.freezes.describe`) with when each in force ends."""
    blocks: list[Block] = [header("Change freezes")]
    if not windows:
        blocks.append(section("No change freeze is planned."))
    for data, until in windows[:40]:
        blocks.append(section(window_line(data, until)))
    blocks.append(context(f"Now: {now:%Y-%m-%d %H:%M} UTC · " + escape(USAGE)))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
