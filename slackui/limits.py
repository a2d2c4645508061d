"""Slack's size limits for messages and views, and the helpers that keep payloads inside them.

Slack rejects a message with more than 50 blocks, a section whose text is over 3000
characters, or a modal with more than 100 blocks (`invalid_blocks`). Everything Playbot posts
goes through these helpers, which cut long content and say what was left out
("…and 12 more") instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_SECTION_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_OPTION_TEXT = 75
MAX_SELECT_OPTIONS = 100
MAX_BUTTON_VALUE = 2000
MAX_MESSAGE_TEXT = 4000  # Slack truncates `text` after 40,000; notifications read best short
MAX_VIEW_TITLE = 24
MAX_INPUT_LABEL = 2000
MAX_PLACEHOLDER = 150
MAX_PRIVATE_METADATA = 3000
MAX_INPUT_VALUE = 3000

ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def truncate_lines(lines: Sequence[str], limit: int, *, keep: str = "tail") -> str:
    """Join `lines` so the result fits `limit` characters, keeping the last (or first) lines.

    Dropped lines are announced with one "…N earlier lines" (or "…N more lines") line.
    A single over-long line is cut itself.
    """
    kept: list[str] = []
    size = 0
    ordered = list(reversed(lines)) if keep == "tail" else list(lines)
    for line in ordered:
        cost = len(line) + 1
        if size + cost > limit - 40:  # room for the "…N more" note
            break
        kept.append(line)
        size += cost
    dropped = len(lines) - len(kept)
    if keep == "tail":
        kept.reverse()
        if dropped:
            kept.insert(0, f"{ELLIPSIS}{dropped} earlier line{'s' if dropped != 1 else ''}")
    elif dropped:
        kept.append(f"{ELLIPSIS}and {dropped} more line{'s' if dropped != 1 else ''}")
    if not kept and lines:
        return truncate(lines[-1] if keep == "tail" else lines[0], limit)
    return truncate("\n".join(kept), limit)


def take(items: Sequence[T], limit: int) -> tuple[list[T], int]:
    """The first `limit` items and how many were left out."""
    shown = list(items[:limit])
    return shown, max(len(items) - len(shown), 0)


def more_note(hidden: int, noun: str = "more") -> str:
    """The "…and N more" line shown where items were left out."""
    return f"{ELLIPSIS}and {hidden} {noun}"


def cap_blocks(
    blocks: list[dict[str, Any]], limit: int = MAX_MESSAGE_BLOCKS
) -> list[dict[str, Any]]:
    """`blocks` cut to `limit`, the last kept block saying how many were left out.

    Every section text is also cut to Slack's 3000 characters.
    """
    blocks = [_fit_block(block) for block in blocks]
    if len(blocks) <= limit:
        return blocks
    hidden = len(blocks) - (limit - 1)
    note = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": more_note(hidden, "more blocks not shown")}],
    }
    return [*blocks[: limit - 1], note]


def _fit_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") != "section":
        return block
    fitted = dict(block)
    text = fitted.get("text")
    if isinstance(text, dict) and len(text.get("text", "")) > MAX_SECTION_TEXT:
        fitted["text"] = {**text, "text": truncate(text["text"], MAX_SECTION_TEXT)}
    fields = fitted.get("fields")
    if fields:
        fitted["fields"] = [
            {**f, "text": truncate(f.get("text", ""), MAX_FIELD_TEXT)}
            for f in fields[:MAX_SECTION_FIELDS]
        ]
    return fitted
