"""The audit trail of one resource, newest first, as an ephemeral reply for admins.

One line per entry says what happened, by whom, on what, when: `2026-12-02 08:14 UTC · alice ·
approved the run · ticket 3f2a9c1e`. An entry made without a person says where it came from
(the CLI and its OS user, the console, or Playbot itself: the clock, a worker). A refused
request says so, with the reason. `details` shows each entry's recorded details under its
line, every value cut on its own (never the whole record mid-value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db.models import AuditLog
from slackui.blocks import Block, context, escape, header, section, when
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks, more_note, take, truncate
from slackui.values import shown_value

TRAIL_LIMIT = 30
DETAIL_VALUE_LIMIT = 120
ENTRIES_PER_SECTION = 10
ENTRIES_PER_SECTION_WITH_DETAILS = 4

# What an action did, as a phrase after its actor; unknown actions show their own name.
PHRASES = {
    "job.launch": "launched", "job.launch_form": "opened the run form for",
    "job.cancel": "cancelled", "job.retry": "retried",
    "approval.approve": "approved", "approval.reject": "rejected",
    "approval.expire": "let expire (nobody decided)",
    "ticket.open": "opened", "ticket.take": "took", "ticket.resolve": "resolved",
    "ticket.close": "closed",
    "user.add": "added", "user.set_role": "changed the role of", "user.deactivate": "deactivated",
    "user.activate": "reactivated",
    "server.add": "added", "server.update": "updated", "server.import": "imported",
    "server.deactivate": "deactivated", "server.activate": "reactivated",
    "server.trust_host_key": "pinned the host key of",
    "playbook.register": "registered", "playbook.update": "updated",
    "playbook.deactivate": "deactivated", "playbook.sync": "synced",
    "template.add": "saved", "template.update": "changed", "template.remove": "removed",
    "template.run": "ran", "token.create": "made an API token for",
    "token.revoke": "revoked an API token of", "freeze.add": "froze",
    "freeze.end": "ended the freeze of", "freeze.break_glass": "broke the freeze for",
    "db.upgrade": "upgraded", "db.downgrade": "downgraded", "audit.view": "read the audit of",
}


def actor(entry: AuditLog, names: Mapping[int, str]) -> str:
    """Who did it: the username, else where the change came from."""
    user_id = entry.user_id or getattr(entry, "actor_user_id", None)
    if user_id:
        return names.get(user_id, f"user #{user_id}")
    details = entry.details or {}
    via = details.get("via")
    if via == "cli":
        return f"CLI ({details['os_user']})" if details.get("os_user") else "CLI"
    if via == "console":
        return "console"
    if via == "api":
        return "API"
    return "Playbot (automatic)"


def _what(entry: AuditLog) -> str:
    phrase = PHRASES.get(entry.action, entry.action)
    target = f"{entry.resource_type} {_short(entry.resource_id)}" if entry.resource_id else (
        entry.resource_type)
    refused = ""
    details = entry.details or {}
    if details.get("outcome") == "denied":
        reason = details.get("reason") or details.get("error")
        refused = " — refused" + (f": {truncate(str(reason), 160)}" if reason else "")
    return f"{phrase} {target}{refused}"


def _short(resource_id: str) -> str:
    """A uuid is shown by its first 8 characters (what /job and /tickets accept)."""
    if len(resource_id) == 36 and resource_id.count("-") == 4:
        return resource_id[:8]
    return resource_id


def audit_line(entry: AuditLog, names: Mapping[int, str]) -> str:
    """`when · who · what` of one entry, escaped."""
    return f"{when(entry.timestamp)} · *{escape(actor(entry, names))}* · {escape(_what(entry))}"


def details_lines(entry: AuditLog) -> list[str]:
    """The entry's details, one `key: value` each, every value cut on its own."""
    lines = []
    for key, value in sorted((entry.details or {}).items()):
        if key in ("via", "os_user", "outcome"):
            continue  # already said by the line itself
        lines.append(f"      {escape(key)}: `{escape(truncate(_value(value), DETAIL_VALUE_LIMIT))}`")
    return lines


def _value(value: Any) -> str:
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return value[:8]
    return shown_value(value)


def audit_trail_blocks(resource_type: str, resource_id: str, entries: Sequence[AuditLog],
                       names: Mapping[int, str], *, with_details: bool = False,
                       scope: str | None = None) -> list[Block]:
    """Entries of one resource, newest first; `names` maps user ids to usernames; `scope`
    says what the trail covers when it is more than the resource's own rows."""
    shown, hidden = take(entries, TRAIL_LIMIT)
    blocks: list[Block] = [header(f"Audit trail: {resource_type} {resource_id}")]
    if scope:
        blocks.append(context(escape(scope)))
    if not shown:
        blocks.append(section("No audit entries for that resource."))
        return blocks
    per_section = ENTRIES_PER_SECTION_WITH_DETAILS if with_details else ENTRIES_PER_SECTION
    for start in range(0, len(shown), per_section):
        lines: list[str] = []
        for entry in shown[start:start + per_section]:
            lines.append(audit_line(entry, names))
            if with_details:
                lines.extend(details_lines(entry))
        blocks.append(section("\n".join(lines)))
    if hidden:
        blocks.append(context(more_note(hidden, "older entry" if hidden == 1
                                        else "older entries")))
    if not with_details:
        blocks.append(context(f"`/audit {escape(resource_type)} {escape(resource_id)} details` "
                              "shows what each entry recorded."))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
