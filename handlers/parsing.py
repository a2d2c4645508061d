"""Reading what users type after a slash command: words, flags, user mentions, subcommands.

Parsing only — no database, no Slack — so the ack half of a listener can use it. Mistakes
raise `InvalidInput` with the closest valid words (`core.suggestions.closest`).

Slack escapes `&`, `<` and `>` in a slash command's text (`&amp;`, `&lt;`, `&gt;`), leaving
only its own markup (`<@U…|name>` mentions, `<#C…|name>` channels, links) unescaped.
`slack_unescape` undoes that once, before anything is parsed, so `note=a&b` is the value
`a&b` and `version=<1.2>` is `<1.2>`; what goes back to Slack is escaped again
(`slackui.text`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import InvalidInput
from core.suggestions import closest

MENTION = re.compile(r"^<@([UW][A-Z0-9_]+)(?:\|([^>]*))?>$")


def slack_unescape(text: str) -> str:
    """A slash command's text as the user typed it: Slack's `&lt;`, `&gt;`, `&amp;` undone
    (`&amp;` last, so a typed `&lt;` — sent as `&amp;lt;` — stays `&lt;`)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_words(text: str) -> list[str]:
    """Split like a shell (quotes group words); unbalanced quotes are a clear error."""
    # Slack clients turn quotes into typographic ones; treat them as plain quotes.
    normalized = (text.replace("\u201c", '"').replace("\u201d", '"')
                  .replace("\u2018", "'").replace("\u2019", "'"))
    try:
        return shlex.split(normalized)
    except ValueError as exc:
        raise InvalidInput(f"I could not read that: {exc} (check your quotes).") from None


def unknown(word: str, candidates: Iterable[str], what: str, usage: str | None = None
            ) -> InvalidInput:
    """The error for a word that is not one of `candidates`, with the closest ones."""
    options = list(candidates)
    usage_text = f" Usage: `{usage}`" if usage else ""
    return InvalidInput(f"Unknown {what} `{word}`.{usage_text}",
                        suggestions=closest(word, options))


@dataclass(frozen=True)
class UserRef:
    """A user named in a command: `<@U123|alice>` (escaped mention), `@alice` or `alice`."""

    slack_user_id: str | None
    name: str | None

    def __str__(self) -> str:
        return f"<@{self.slack_user_id}>" if self.slack_user_id else f"@{self.name}"


def parse_user(token: str) -> UserRef | None:
    """A user reference, or None when `token` does not look like one."""
    match = MENTION.match(token)
    if match:
        return UserRef(match.group(1), match.group(2) or None)
    if token.startswith("@") and len(token) > 1:
        return UserRef(None, token[1:])
    return None


def split_flags(words: list[str], known: Iterable[str]) -> tuple[list[str], set[str]]:
    """Separate `--flags` from the other words; an unknown flag is an error with suggestions."""
    allowed = set(known)
    flags: set[str] = set()
    rest: list[str] = []
    for word in words:
        if word.startswith("--"):
            if word not in allowed:
                raise unknown(word, allowed, "option")
            flags.add(word)
        else:
            rest.append(word)
    return rest, flags


def parse_filters(words: list[str], keys: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """`key:value` words for the given keys; the other words are returned as they are."""
    allowed = set(keys)
    filters: dict[str, str] = {}
    rest: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        if sep and key in allowed:
            if not value:
                raise InvalidInput(f"`{word}` needs a value, e.g. `{key}:production`.")
            filters[key] = value
        elif sep and key.isalpha() and not rest:
            raise unknown(f"{key}:", [f"{k}:" for k in allowed], "filter")
        else:
            rest.append(word)
    return filters, rest
