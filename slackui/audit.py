"""The audit trail of one resource, newest first, as an ephemeral reply for admins."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from db.models import AuditLog
from slackui.blocks import Block, context, escape, header, section, when
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks, more_note, take, truncate

TRAIL_LIMIT = 30


def audit_line(entry: AuditLog, names: Mapping[int, str]) -> str:
    who = names.get(entry.user_id, f"user #{entry.user_id}") if entry.user_id else "unknown"
    details = ""
    if entry.details:
        details = " · `" + escape(truncate(json.dumps(entry.details, sort_keys=True,
                                                      default=str), 200)) + "`"
    return f"{when(entry.timestamp)} · *{escape(entry.action)}* · {escape(who)}{details}"


def audit_trail_blocks(resource_type: str, resource_id: str, entries: Sequence[AuditLog],
                       names: Mapping[int, str]) -> list[Block]:
    """Entries of one resource; `names` maps user ids to usernames."""
    shown, hidden = take(entries, TRAIL_LIMIT)
    blocks: list[Block] = [header(f"Audit trail: {resource_type} {resource_id}")]
    if not shown:
        blocks.append(section("No audit entries for that resource."))
        return blocks
    # One section per ~10 entries keeps each under Slack's 3000 characters.
    for start in range(0, len(shown), 10):
        chunk = shown[start:start + 10]
        blocks.append(section("\n".join(audit_line(e, names) for e in chunk)))
    if hidden:
        blocks.append(context(more_note(hidden, "older entries")))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
