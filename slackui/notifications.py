"""Notification settings in Slack: what `/notify` shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slackui.blocks import Block, context, escape, fields, header, section

EVENTS_HELP = ("Events: `job_ended` (a job of mine ended), `job_failed` (a failure, narrowed "
               "by `env=` and `playbook=`), `approval_waiting` (a request I can approve), "
               "`ticket_assigned` (a ticket given to me).")


def _list(values: Sequence[str]) -> str:
    return ", ".join(f"`{escape(v)}`" for v in values) or "any"


def settings_blocks(mine: Mapping[str, Any], routes: Sequence[Mapping[str, Any]], *,
                    changed: bool = False) -> list[Block]:
    to = "a DM" if mine["to"] == "dm" else f"<#{escape(mine['to'])}>"
    blocks: list[Block] = [
        header("Your notifications" + (" (saved)" if changed else "")),
        fields([("Events", ", ".join(f"`{e}`" for e in mine["events"]) or "none"),
                ("Sent to", to),
                ("Failures of environments", _list(mine["environments"])),
                ("Failures of playbooks", _list(mine["playbooks"])),
                ("Quiet hours", escape(mine["quiet"]))]),
    ]
    if routes:
        lines = [f"<#{escape(r['channel'])}>: {', '.join(r['events']) or 'nothing'}"
                 f" · env {_list(r['environments'])} · playbook {_list(r['playbooks'])}"
                 for r in routes[:30]]
        blocks.append(section("*Channel routes*\n" + "\n".join(lines)))
    blocks.append(context(EVENTS_HELP + " Change: `/notify events=job_ended,job_failed "
                          "env=production quiet=22:00-07:00 tz=Europe/Paris to=dm`; admins: "
                          "`/notify channel #ops events=job_failed env=production`."))
    return blocks
