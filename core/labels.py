"""Tags and environments as operators type them: validated, normalised, matched.

Servers and playbooks carry `tags` (a JSON list) and servers an `environment`. These helpers
are shared by the server and playbook registries and the inventory import, so a tag or an
environment is accepted (or refused, with the same message) wherever it is typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from core.errors import InvalidInput
from core.suggestions import closest
from db.models import Environment

TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")
TAG_RULE = "letters, digits, `_`, `.`, `:` and `-`, at most 64 characters"
MAX_TAGS = 32
ENVIRONMENTS = tuple(e.value for e in Environment)


def parse_environment(value: str | Environment) -> Environment:
    """`"production"` (any case, or an Environment) → Environment.production.

    Raises InvalidInput naming the valid environments and the closest match.
    """
    if isinstance(value, Environment):
        return value
    text = str(value or "").strip().lower()
    try:
        return Environment(text)
    except ValueError:
        raise InvalidInput(
            f"Unknown environment `{value}`: use one of {', '.join(ENVIRONMENTS)}.",
            suggestions=closest(text, ENVIRONMENTS),
        ) from None


def clean_tags(tags: Iterable[Any] | None, *, what: str = "tag") -> list[str]:
    """Tags as stored: stripped, valid, without duplicates (compared case-insensitively),
    in the order given. Raises InvalidInput listing every bad tag."""
    result: list[str] = []
    seen: set[str] = set()
    bad: list[str] = []
    for raw in tags or []:
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            bad.append(repr(raw))
            continue
        tag = str(raw).strip()
        if not TAG_PATTERN.match(tag):
            bad.append(f"`{tag}`" if tag else "(empty)")
            continue
        if tag.lower() not in seen:
            seen.add(tag.lower())
            result.append(tag)
    if bad:
        raise InvalidInput(f"Invalid {what}{'s' if len(bad) > 1 else ''} {', '.join(bad)}: "
                           f"a tag uses {TAG_RULE}.")
    if len(result) > MAX_TAGS:
        raise InvalidInput(f"Too many tags ({len(result)}); at most {MAX_TAGS}.")
    return result


def has_tag(tags: Iterable[Any] | None, tag: str) -> bool:
    """Whether `tag` is among `tags`, compared case-insensitively (as `tag:<t>` targets are)."""
    wanted = tag.strip().lower()
    return any(str(t).lower() == wanted for t in tags or [])


def known_tags(tag_lists: Iterable[Iterable[Any] | None]) -> list[str]:
    """Every distinct tag in `tag_lists`, sorted case-insensitively."""
    found: dict[str, str] = {}
    for tags in tag_lists:
        for tag in tags or []:
            found.setdefault(str(tag).lower(), str(tag))
    return sorted(found.values(), key=str.lower)
