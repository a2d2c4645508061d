"""Small Block Kit builders: sections, headers, buttons, code blocks, escaping.

Each returns a plain dict already cut to Slack's limits, so callers compose messages
without thinking about sizes. Text a user typed is escaped with `escape()` (the one rule,
`slackui.text`) before it is placed in mrkdwn, so `<!channel>` or `<@U…>` in a value is
shown, not acted on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from slackui.limits import (
    MAX_BUTTON_TEXT,
    MAX_BUTTON_VALUE,
    MAX_CONTEXT_ELEMENTS,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_OPTION_TEXT,
    MAX_SECTION_FIELDS,
    MAX_SECTION_TEXT,
    truncate,
    truncate_lines,
)
from slackui.text import escape  # the one rule; callers import it from here too

Block = dict[str, Any]


def plain(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER_TEXT)}


def section(text: str, *, accessory: Block | None = None, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    if block_id:
        block["block_id"] = block_id
    return block


def fields(pairs: Iterable[tuple[str, str]]) -> Block:
    """A two-column section of "*label*\\nvalue" fields (at most 10)."""
    items = [mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs]
    return {"type": "section", "fields": items[:MAX_SECTION_FIELDS]}


def context(*texts: str) -> Block:
    return {"type": "context",
            "elements": [mrkdwn(t, MAX_SECTION_TEXT) for t in texts[:MAX_CONTEXT_ELEMENTS]]}


def divider() -> Block:
    return {"type": "divider"}


def button(text: str, action_id: str, value: str, *, style: str | None = None,
           confirm: dict[str, Any] | None = None) -> Block:
    """A button; `style` is "primary" or "danger"; `confirm` from `confirm_dialog()`."""
    element: Block = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": truncate(value, MAX_BUTTON_VALUE),
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, confirm: str, deny: str = "Cancel",
                   *, danger: bool = False) -> dict[str, Any]:
    dialog: dict[str, Any] = {
        "title": plain(title, 100),
        "text": mrkdwn(text, 300),
        "confirm": plain(confirm, 30),
        "deny": plain(deny, 30),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def actions(*elements: Block, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements[:25])}
    if block_id:
        block["block_id"] = block_id
    return block


def option(text: str, value: str, description: str | None = None) -> dict[str, Any]:
    opt: dict[str, Any] = {"text": plain(text, MAX_OPTION_TEXT), "value": value[:150]}
    if description:
        opt["description"] = plain(description, MAX_OPTION_TEXT)
    return opt


def code_block(lines: Sequence[str], limit: int = MAX_SECTION_TEXT, *,
               keep: str = "tail") -> Block:
    """A section showing `lines` as preformatted text, keeping the last lines that fit
    (`keep="head"`: the first)."""
    body = truncate_lines([escape(line).replace("```", "'''") for line in lines], limit - 8,
                          keep=keep)
    return section(f"```\n{body or ' '}\n```")


def user_mention(slack_user_id: str | None, fallback: str) -> str:
    """`<@U…>` when the Slack id is known, else the plain name."""
    return f"<@{slack_user_id}>" if slack_user_id else escape(fallback)


def when(moment: datetime | None) -> str:
    """A timestamp as Slack's localised date token, with a UTC fallback for old clients."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 05s`, `12s`; "—" when unknown."""
    if seconds is None:
        return "—"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def short_id(uuid: str) -> str:
    """The first 8 characters of a job or ticket uuid: enough to type, unique in practice."""
    return uuid[:8]
