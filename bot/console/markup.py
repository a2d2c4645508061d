"""Slack's mrkdwn, made readable in a terminal.

`to_terminal(text, style)` turns what Slack would render — `*bold*`, `_italic_`, `` `code` ``,
`<@U…>` mentions, `<#C…>` channels, `<url|label>` links, `<!date^…|fallback>` dates, `:emoji:`
shortcodes and the `&amp;` escapes — into plain text, with ANSI bold/dim when `style` says the
terminal can show them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

EMOJI = {
    "arrows_counterclockwise": "🔄",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "warning": "⚠️",
    "no_entry": "⛔",
    "no_entry_sign": "🚫",
    "mag": "🔍",
    "information_source": "ℹ️",
    "raised_hand": "✋",
    "raising_hand": "🙋",
    "hand": "✋",
    "heavy_multiplication_x": "✖",
    "question": "❓",
    "exclamation": "❗",
    "speech_balloon": "💬",
    "calendar": "📅",
    "chart_with_upwards_trend": "📈",
    "busts_in_silhouette": "👥",
    "key": "🔑",
    "books": "📚",
    "page_facing_up": "📄",
    "skull": "💀",
    "zzz": "💤",
    "arrow_right": "➡",
    "white_large_square": "⬜",
    "large_red_square": "🟥",
    "large_green_square": "🟩",
    "rocket": "🚀",
    "inbox_tray": "📥",
    "repeat": "🔁",
    "tada": "🎉",
    "lock": "🔒",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "file_cabinet": "🗄",
    "red_circle": "🔴",
    "large_orange_circle": "🟠",
    "large_yellow_circle": "🟡",
    "large_green_circle": "🟢",
    "large_blue_circle": "🔵",
    "white_circle": "⚪",
    "black_circle": "⚫",
    "ticket": "🎫",
    "bust_in_silhouette": "👤",
    "gear": "⚙️",
    "clipboard": "📋",
    "bar_chart": "📊",
    "memo": "📝",
    "wave": "👋",
    "stopwatch": "⏱",
    "fire": "🔥",
    "bulb": "💡",
    "eyes": "👀",
    "construction": "🚧",
    "rotating_light": "🚨",
    "thumbsup": "👍",
    "+1": "👍",
    "robot_face": "🤖",
    "scroll": "📜",
    "desktop_computer": "🖥",
    "package": "📦",
    "no_bell": "🔕",
    "hammer_and_wrench": "🛠",
    "link": "🔗",
}

_ANGLE = re.compile(r"<([^<>]+)>")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_CODE = re.compile(r"`([^`\n]+)`")


@dataclass(frozen=True)
class Style:
    """How to emphasise text: ANSI escapes when `color`, else plain."""

    color: bool = False

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[22m" if self.color else text

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[22m" if self.color else text

    def italic(self, text: str) -> str:
        return f"\x1b[3m{text}\x1b[23m" if self.color else text

    def cyan(self, text: str) -> str:
        return f"\x1b[36m{text}\x1b[39m" if self.color else text

    def yellow(self, text: str) -> str:
        return f"\x1b[33m{text}\x1b[39m" if self.color else text

    def red(self, text: str) -> str:
        return f"\x1b[31m{text}\x1b[39m" if self.color else text

    @classmethod
    def for_stream(cls, stream: object) -> Style:
        """Colour when `stream` is a terminal and NO_COLOR is not set."""
        isatty = getattr(stream, "isatty", None)
        tty = bool(isatty and isatty())
        return cls(color=tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb")


PLAIN = Style(color=False)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """`text` without ANSI escape sequences."""
    return _ANSI.sub("", text)


def emoji(text: str) -> str:
    """Replace known `:shortcode:`s by their emoji; leave unknown ones as typed."""
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def to_terminal(text: str, style: Style = PLAIN,
                user_name: Callable[[str], str] | None = None) -> str:
    """Render Slack mrkdwn `text` for a terminal.

    user_name: maps a Slack user id (`U_ALICE`) to a name for `<@U_ALICE>` mentions.
    """
    name_of = user_name or (lambda uid: uid)

    def angle(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or name_of(target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!subteam^"):
            return "@" + (label or "group")
        if target.startswith("!"):
            return "@" + (label or target[1:])
        return label or target

    out = _ANGLE.sub(angle, text)
    out = emoji(out)
    out = _CODE.sub(lambda m: style.cyan(m.group(1)) if style.color else m.group(1), out)
    out = _BOLD.sub(lambda m: style.bold(m.group(1)), out)
    out = _ITALIC.sub(lambda m: style.italic(m.group(1)), out)
    out = _STRIKE.sub(lambda m: m.group(1), out)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def plain_text(obj: object) -> str:
    """The text of a Block Kit text object (plain_text or mrkdwn), or ""."""
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    if isinstance(obj, str):
        return obj
    return ""
