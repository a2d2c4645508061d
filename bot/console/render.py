"""Block Kit, drawn as terminal lines.

`render_message(text, blocks, ...)` turns a message the app sent to Slack into indented lines
of text the way a person would read it in Slack: headers in bold, sections and fields,
context lines dimmed, code blocks kept verbatim, dividers as a rule, and every interactive
element (button, select, overflow) as a numbered choice `[3 Take]` that `click 3` presses.
The numbers come from the caller (`number_for`), so the same button keeps its number when
its message is redrawn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.console.markup import PLAIN, Style, plain_text, to_terminal

Block = dict[str, Any]
INTERACTIVE = frozenset({"button", "static_select", "overflow", "users_select",
                         "conversations_select", "channels_select", "external_select",
                         "datepicker", "checkboxes", "radio_buttons"})


@dataclass
class Choice:
    """One interactive element of a message: a button, or one option of a select/overflow."""

    label: str
    action_id: str
    block_id: str | None
    element: dict[str, Any]
    option: dict[str, Any] | None = None  # the chosen option, for selects and overflows
    number: int = 0

    @property
    def key(self) -> tuple[str, str | None, str]:
        """What identifies the choice across redraws of its message."""
        value = self.element.get("value") or (self.option or {}).get("value") or ""
        return (self.action_id, self.block_id, str(value))

    @property
    def confirm(self) -> dict[str, Any] | None:
        return self.element.get("confirm")

    @property
    def url(self) -> str | None:
        return self.element.get("url")


@dataclass
class Rendered:
    """A message as lines, what kind of block each line came from, and its choices.

    Kinds: "text" (sections, fields), "header", "context", "code", "choices", "other".
    """

    lines: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    def add(self, kind: str, lines: Sequence[str]) -> None:
        self.lines.extend(lines)
        self.kinds.extend(kind for _ in lines)

    @property
    def body(self) -> list[str]:
        """The lines without the row(s) of choices."""
        return [line for line, kind in zip(self.lines, self.kinds, strict=True)
                if kind != "choices"]

    def of_kind(self, *kinds: str) -> list[str]:
        return [line for line, kind in zip(self.lines, self.kinds, strict=True) if kind in kinds]


NumberFor = Callable[[Choice], int]


class BlockRenderer:
    """Renders blocks with one style and one way of naming users and numbering choices."""

    def __init__(self, style: Style = PLAIN, user_name: Callable[[str], str] | None = None,
                 number_for: NumberFor | None = None) -> None:
        self.style = style
        self.user_name = user_name
        counter = iter(range(1, 1_000_000))
        self.number_for = number_for or (lambda _choice: next(counter))

    # text ------------------------------------------------------------------------------
    def mrkdwn(self, text: str) -> list[str]:
        """Lines of one mrkdwn text; ``` fences are kept verbatim and indented."""
        lines: list[str] = []
        parts = text.split("```")
        for index, part in enumerate(parts):
            if index % 2 == 1:  # inside a code fence
                body = part.strip("\n")
                for raw in body.splitlines() or [""]:
                    lines.append(("  " + _unescape(raw)).rstrip())
            else:
                if not part.strip("\n") and index > 0:
                    continue
                for raw in part.strip("\n").splitlines():
                    lines.append(to_terminal(raw, self.style, self.user_name))
        return lines

    def text_object(self, obj: Any) -> list[str]:
        if isinstance(obj, dict) and obj.get("type") == "plain_text":
            return [_unescape_plain(line) for line in plain_text(obj).splitlines()]
        return self.mrkdwn(plain_text(obj))

    # blocks ----------------------------------------------------------------------------
    def render(self, text: str, blocks: Sequence[Block] | None) -> Rendered:
        """A message: its blocks if it has any (as Slack shows them), else its text."""
        out = Rendered()
        if not blocks:
            out.add("text", self.mrkdwn(text or ""))
            return out
        for block in blocks:
            self._block(block, out)
        return out

    def _block(self, block: Block, out: Rendered) -> None:
        kind = block.get("type")
        if kind == "header":
            out.add("header", [self.style.bold(line)
                               for line in self.text_object(block.get("text"))])
        elif kind == "section":
            if block.get("text"):
                self._text(block["text"], out)
            items = ["\n".join(self.text_object(f)).strip() for f in block.get("fields") or []]
            items = [_field_line(item) for item in items if item]
            out.add("text", ["   ".join(items[start:start + 2])  # two columns, as in Slack
                             for start in range(0, len(items), 2)])
            accessory = block.get("accessory")
            if isinstance(accessory, dict) and accessory.get("type") in INTERACTIVE:
                out.add("choices", [self._choices([accessory], block.get("block_id"), out)])
        elif kind == "context":
            parts = []
            for element in block.get("elements") or []:
                if element.get("type") == "image":
                    continue
                parts.append(" ".join(self.text_object(element)))
            if parts:
                out.add("context", [self.style.dim(" · ".join(parts))])
        elif kind == "divider":
            out.add("other", [self.style.dim("─" * 24)])
        elif kind == "actions":
            line = self._choices(block.get("elements") or [], block.get("block_id"), out)
            if line:
                out.add("choices", [line])
        elif kind == "rich_text":
            out.add("text", self.mrkdwn(_rich_text(block)))
        elif kind == "image":
            out.add("other", [self.style.dim(f"[image: {block.get('alt_text', '')}]")])
        elif kind == "input":
            label = " ".join(self.text_object(block.get("label")))
            out.add("other", [f"{label}: …"])

    def _text(self, obj: Any, out: Rendered) -> None:
        """A section's text: mrkdwn lines, with ``` fences marked as code."""
        if isinstance(obj, dict) and obj.get("type") == "plain_text":
            out.add("text", self.text_object(obj))
            return
        for index, part in enumerate(plain_text(obj).split("```")):
            if index % 2 == 1:
                out.add("code", [("  " + _unescape(raw)).rstrip()
                                 for raw in part.strip("\n").splitlines() or [""]])
            elif part.strip("\n"):
                out.add("text", [to_terminal(raw, self.style, self.user_name)
                                 for raw in part.strip("\n").splitlines()])

    def _choices(self, elements: Sequence[dict[str, Any]], block_id: str | None,
                 out: Rendered) -> str:
        shown = []
        for element in elements:
            kind = element.get("type")
            if kind not in INTERACTIVE:
                continue
            action_id = str(element.get("action_id") or "")
            if kind == "button":
                label = " ".join(self.text_object(element.get("text"))) or action_id
                choice = Choice(label=label, action_id=action_id, block_id=block_id,
                                element=element)
                choice.number = self.number_for(choice)
                out.choices.append(choice)
                shown.append(f"[{choice.number} {label}]")
                continue
            options = element.get("options") or [
                opt for group in element.get("option_groups") or []
                for opt in group.get("options") or []]
            for opt in options:
                label = " ".join(self.text_object(opt.get("text")))
                choice = Choice(label=label, action_id=action_id, block_id=block_id,
                                element=element, option=opt)
                choice.number = self.number_for(choice)
                out.choices.append(choice)
                shown.append(f"[{choice.number} {label}]")
        return " ".join(self.style.yellow(item) for item in shown)


def _field_line(text: str) -> str:
    """"*Label*\nvalue" as "Label: value"."""
    label, sep, value = text.partition("\n")
    if sep:
        return f"{label}: {' '.join(value.splitlines())}"
    return text


def _rich_text(block: Block) -> str:
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                parts.append(str(node.get("text", "")))
            elif node.get("type") == "user":
                parts.append(f"<@{node.get('user_id', '')}>")
            for child in node.get("elements") or []:
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(block.get("elements") or [])
    return "".join(parts)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _unescape_plain(text: str) -> str:
    from bot.console.markup import emoji

    return emoji(text)
