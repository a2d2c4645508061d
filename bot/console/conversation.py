"""What the console's user sees of Slack: every Web API call the app makes, drawn as it happens.

`Conversation` subscribes to the in-process `FakeSlack` and keeps a small model of the
workspace as a person would see it: channel messages, messages updated in place (redrawn
compactly as `↻ …`, or in full when their buttons change, e.g. at the final recap), thread
replies indented under their parent, ephemeral replies marked "(only you)", uploaded files,
modals waiting to be filled in, and the App Home tab. Every button gets a number that stays
the same while its message lives, so `click 3` always means the same thing.

Replies through a `response_url` follow Slack's rules: `replace_original` / `delete_original`
change the message the button was on, `in_channel` posts for everyone, anything else is
ephemeral.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.console.render import BlockRenderer, Choice, Rendered
from bot.console.screen import Screen
from bot.fake_slack import Call, FakeSlack, json_list, json_obj
from bot.fake_slack import Message as FakeMessage

log = logging.getLogger(__name__)
MessageKey = tuple[str, str]  # (channel, ts)
THREAD_INDENT = "    │ "
BODY_INDENT = "  "
# Slack Web API methods that change nothing a person would see.
SILENT = frozenset({"auth.test", "conversations.open", "users.info", "chat.getPermalink",
                    "files.getUploadURLExternal", "users.lookupByEmail", "conversations.info",
                    "team.info", "bots.info", "chat.scheduleMessage"})


@dataclass
class Shown:
    """A message as the console's user sees it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    ephemeral_for: str | None = None
    rendered: Rendered = field(default_factory=Rendered)
    deleted: bool = False
    drawn_text: str = ""  # the notification text when the message was last drawn

    @property
    def key(self) -> MessageKey:
        return (self.channel, self.ts)


@dataclass
class Origin:
    """Where an interaction came from, so replies to its response_url land in the right place."""

    user: str
    channel: str
    message: MessageKey | None = None


@dataclass
class Modal:
    """A view opened (or pushed) for a user; `version` grows with each views.update."""

    id: str
    view: dict[str, Any]
    user: str
    version: int = 0
    closed: bool = False

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id") or "")

    @property
    def title(self) -> str:
        return str((self.view.get("title") or {}).get("text") or "Form")


@dataclass
class ClickTarget:
    """A numbered choice and the message it is on."""

    number: int
    message: Shown | None
    choice: Choice
    gone: bool = False


class Conversation:
    """The console's model of the workspace, drawn on a `Screen` as the app talks to Slack."""

    def __init__(self, fake: FakeSlack, screen: Screen, *, user_name: Callable[[str], str],
                 current_user: Callable[[], str], channel_name: Callable[[str], str],
                 default_channel: str) -> None:
        self.fake = fake
        self.default_channel = default_channel
        self.screen = screen
        self.user_name = user_name
        self.current_user = current_user
        self.channel_name = channel_name
        self._lock = threading.RLock()
        self._activity = threading.Condition(self._lock)
        self.messages: dict[MessageKey, Shown] = {}
        self._claimed: set[MessageKey] = set()
        self._numbers: dict[tuple[Any, ...], int] = {}
        self._next_number = 1
        self.targets: dict[int, ClickTarget] = {}
        self.origins: dict[str, Origin] = {}
        self.triggers: dict[str, str] = {}  # trigger_id -> slack user id
        self.modals: dict[str, Modal] = {}
        self.pending_modals: deque[str] = deque()
        self.home_views: dict[str, dict[str, Any]] = {}
        self.want_home: set[str] = set()
        self.last_call_at = time.monotonic()
        self.calls_seen = 0
        self.replies: list[Shown] = []  # ephemeral replies, in the order they arrived
        self.renderer = BlockRenderer(screen.style, user_name, self._number_for)
        self._numbering: MessageKey | None = None
        fake.subscribe(self._on_call)

    # numbering -------------------------------------------------------------------------
    def _number_for(self, choice: Choice) -> int:
        key = (self._numbering, *choice.key)
        number = self._numbers.get(key)
        if number is None:
            number = self._next_number
            self._next_number += 1
            self._numbers[key] = number
        return number

    def _render(self, message: Shown) -> Rendered:
        self._numbering = message.key
        rendered = self.renderer.render(message.text, message.blocks)
        self._numbering = None
        live = {c.number for c in rendered.choices}
        for old in message.rendered.choices:
            if old.number not in live and old.number in self.targets:
                self.targets[old.number].gone = True
        for choice in rendered.choices:
            self.targets[choice.number] = ClickTarget(choice.number, message, choice)
        message.rendered = rendered
        return rendered

    def target(self, number: int) -> ClickTarget | None:
        with self._lock:
            return self.targets.get(number)

    def find_choice(self, label: str) -> ClickTarget | None:
        """The newest live choice whose label is `label` (case-insensitive), or None."""
        wanted = label.strip().lower()
        with self._lock:
            live = [t for t in self.targets.values() if not t.gone]
            exact = [t for t in live if t.choice.label.lower() == wanted]
            loose = [t for t in live if t.choice.label.lower().startswith(wanted)]
            found = exact or loose
            return max(found, key=lambda t: t.number) if found else None

    # bookkeeping for requests the console sends ------------------------------------------
    def remember_trigger(self, trigger_id: str, user: str) -> None:
        with self._lock:
            self.triggers[trigger_id] = user

    def remember_origin(self, response_url: str, origin: Origin) -> None:
        """Replies to `response_url` belong to `origin` (its user, channel and message)."""
        with self._lock:
            self.origins[response_url.rsplit("/", 1)[-1]] = origin

    def next_modal(self) -> Modal | None:
        """The oldest modal opened but not yet shown to the user, if any."""
        with self._lock:
            while self.pending_modals:
                modal = self.modals.get(self.pending_modals.popleft())
                if modal is not None and not modal.closed:
                    return modal
            return None

    def replies_since(self, index: int, user: str) -> list[Shown]:
        """Ephemeral replies to `user` that arrived after the first `index` replies."""
        with self._lock:
            return [m for m in self.replies[index:] if m.ephemeral_for == user]

    def reply_count(self) -> int:
        with self._lock:
            return len(self.replies)

    def show_ack(self, user: str, channel: str, text: str, blocks: list[dict[str, Any]],
                 in_channel: bool = False) -> Shown:
        """Draw what the app answered in its ack (Slack shows it to the user who typed)."""
        with self._lock:
            message = Shown(channel, f"ack{time.monotonic():.6f}", text, blocks,
                            ephemeral_for=None if in_channel else user)
            self._new(message)
            return message

    def modal(self, view_id: str) -> Modal | None:
        with self._lock:
            return self.modals.get(view_id)

    def close_modal(self, view_id: str) -> None:
        with self._lock:
            modal = self.modals.get(view_id)
            if modal is not None:
                modal.closed = True

    def wait_quiet(self, quiet: float = 0.4, timeout: float = 10.0) -> bool:
        """Wait until no Web API call arrived for `quiet` seconds (False after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._activity:
            while True:
                now = time.monotonic()
                silent_for = now - self.last_call_at
                if silent_for >= quiet:
                    return True
                if now >= deadline:
                    return False
                self._activity.wait(timeout=min(quiet - silent_for, deadline - now))

    # the fake Slack's calls ------------------------------------------------------------
    def _on_call(self, call: Call) -> None:
        with self._activity:
            self.last_call_at = time.monotonic()
            self.calls_seen += 1
            try:
                self._apply(call)
            except Exception:  # noqa: BLE001 - a drawing bug must not hide the call: log it
                log.exception("could not draw the Web API call %s", call.method)
                self.screen.show(self.screen.style.red(
                    f"  (could not draw a {call.method} call; see the console log)"))
            finally:
                self._activity.notify_all()

    def _apply(self, call: Call) -> None:
        method, p = call.method, call.params
        if method in SILENT:
            return
        if method == "chat.postMessage":
            found = self._claim(lambda m: m.channel == p.get("channel") and m.ephemeral_for is None
                                and m.thread_ts == (p.get("thread_ts") or None)
                                and m.text == (p.get("text") or ""))
            if found is not None:
                self._new(Shown(found.channel, found.ts, found.text, list(found.blocks),
                                thread_ts=found.thread_ts))
        elif method == "chat.postEphemeral":
            found = self._claim(lambda m: m.channel == p.get("channel")
                                and m.ephemeral_for == p.get("user")
                                and m.text == (p.get("text") or ""))
            if found is not None:
                self._new(Shown(found.channel, found.ts, found.text, list(found.blocks),
                                thread_ts=found.thread_ts, ephemeral_for=found.ephemeral_for))
        elif method == "chat.update":
            self._update(str(p.get("channel")), str(p.get("ts")), p)
        elif method == "chat.delete":
            self._delete(str(p.get("channel")), str(p.get("ts")))
        elif method == "response_url":
            self._response(p)
        elif method in ("views.open", "views.push"):
            self._view_opened(p)
        elif method == "views.update":
            self._view_updated(p)
        elif method == "views.publish":
            self._home(p)
        elif method == "files.completeUploadExternal":
            self._file(p)
        elif method.endswith(":429"):
            return
        else:
            self.screen.show(self.screen.style.dim(f"(the app called {method})"))

    def _claim(self, match: Callable[[FakeMessage], bool]) -> FakeMessage | None:
        """The first message in the fake's store matching `match` not drawn yet."""
        for message in list(self.fake.messages):
            key = (message.channel, message.ts)
            if key in self._claimed or not match(message):
                continue
            self._claimed.add(key)
            return message
        return None

    # messages --------------------------------------------------------------------------
    def _new(self, message: Shown) -> None:
        self.messages[message.key] = message
        if message.ephemeral_for:
            self.replies.append(message)
        rendered = self._render(message)
        message.drawn_text = message.text
        tag = ("thread", message.channel, message.thread_ts) if message.thread_ts else message.key
        self.screen.show(self._frame(message, rendered.lines), tag=tag)

    def _update(self, channel: str, ts: str, p: dict[str, Any]) -> None:
        message = self.messages.get((channel, ts))
        if message is None:
            found = self.fake.find_message(channel, ts)
            if found is None:
                return
            message = Shown(found.channel, found.ts, found.text, list(found.blocks),
                            thread_ts=found.thread_ts)
            self._claimed.add(message.key)
            self._new(message)
            return
        if "text" in p:
            message.text = p.get("text") or ""
        if "blocks" in p:
            message.blocks = json_list(p.get("blocks"))
        self._redraw(message)

    def _redraw(self, message: Shown) -> None:
        """Show a changed message: in full when its buttons changed (a new state, e.g. the
        final recap), else as one `↻` line with what changed (progress)."""
        before = message.rendered
        old_buttons = [(c.label, c.action_id) for c in before.choices]
        old_text = message.drawn_text
        rendered = self._render(message)
        new_buttons = [(c.label, c.action_id) for c in rendered.choices]
        if rendered.lines == before.lines and message.text == old_text:
            return
        message.drawn_text = message.text
        style = self.screen.style
        if new_buttons != old_buttons:
            lines = [style.dim("↻ updated:")] + rendered.lines
            self.screen.show(self._frame(message, lines), tag=message.key)
            return
        old_body = set(before.of_kind("text", "header"))
        texts = rendered.of_kind("text", "header")
        changed = [line.strip() for line in texts[1:] if line not in old_body and line.strip()]
        summary = self.renderer.mrkdwn(message.text)[0] if message.text.strip() else (
            texts[0].strip() if texts else "")
        if not changed and message.text == old_text:
            return  # only timings moved ("running for 4s"): nothing worth a line
        detail = " · ".join(changed[:2])
        line = f"{summary} — {detail}" if detail else summary
        indent = THREAD_INDENT if message.thread_ts else BODY_INDENT
        self.screen.show(indent + style.dim("↻ ") + line, tag=message.key)

    def _delete(self, channel: str, ts: str) -> None:
        message = self.messages.get((channel, ts))
        if message is None or message.deleted:
            return
        message.deleted = True
        for choice in message.rendered.choices:
            if choice.number in self.targets:
                self.targets[choice.number].gone = True
        first = message.rendered.body[0].strip() if message.rendered.body else ""
        self.screen.show(BODY_INDENT + self.screen.style.dim(f"✗ message removed: {first}"))

    def _response(self, p: dict[str, Any]) -> None:
        text = p.get("text") or ""
        if p.get("response_type") == "in_channel":
            found = self._claim(lambda m: m.channel == p.get("channel", "response")
                                and m.ephemeral_for is None and m.text == text)
        else:
            found = self._claim(lambda m: m.channel == "response"
                                and m.ephemeral_for is not None and m.text == text)
        key = found.ephemeral_for if found is not None and found.ephemeral_for else None
        origin = self._origin_for(key)
        blocks = json_list(p.get("blocks"))
        if _truthy(p.get("delete_original")) and origin.message:
            self._delete(*origin.message)
            return
        if _truthy(p.get("replace_original")) and origin.message:
            message = self.messages.get(origin.message)
            if message is not None:
                message.text, message.blocks = text, blocks
                self._redraw(message)
                return
        ts = found.ts if found is not None else f"r{time.time():.6f}"
        if p.get("response_type") == "in_channel":
            self._new(Shown(origin.channel, ts, text, blocks, thread_ts=p.get("thread_ts")))
        else:
            self._new(Shown(origin.channel, ts, text, blocks, ephemeral_for=origin.user))

    def _origin_for(self, key: str | None) -> Origin:
        if key and key in self.origins:
            return self.origins[key]
        # A slash command's response_url: "<user>-<n>", in the channel the console types in.
        user = key.rsplit("-", 1)[0] if key else self.current_user()
        return Origin(user=user, channel=self.default_channel)

    def _file(self, p: dict[str, Any]) -> None:
        files = json_list(p.get("files"))
        names = ", ".join(str(f.get("title") or f.get("id")) for f in files) or "a file"
        comment = p.get("initial_comment") or ""
        line = f"📎 {names}" + (f" — {comment}" if comment else "")
        indent = THREAD_INDENT if p.get("thread_ts") else BODY_INDENT
        tag = ("thread", p.get("channel_id"), p.get("thread_ts")) if p.get("thread_ts") else None
        self.screen.show(indent + line, tag=tag)

    # views -----------------------------------------------------------------------------
    def _view_opened(self, p: dict[str, Any]) -> None:
        view = json_obj(p.get("view"))
        stored = self._stored_view(view.get("callback_id"))
        view_id = str(stored.get("id")) if stored else f"V_console_{len(self.modals) + 1}"
        user = self.triggers.get(str(p.get("trigger_id") or ""), self.current_user())
        self.modals[view_id] = Modal(id=view_id, view={**view, "id": view_id}, user=user)
        self.pending_modals.append(view_id)
        self.screen.show(BODY_INDENT + self.screen.style.dim(
            f"▣ a form opened: {self.modals[view_id].title}"))

    def _stored_view(self, callback_id: Any) -> dict[str, Any] | None:
        known = set(self.modals)
        for view in reversed(list(self.fake.views)):
            if view.get("id") not in known and view.get("callback_id") == callback_id:
                return view
        return None

    def _view_updated(self, p: dict[str, Any]) -> None:
        view = json_obj(p.get("view"))
        view_id = str(p.get("view_id") or "")
        modal = self.modals.get(view_id)
        if modal is None:
            return
        modal.view = {**view, "id": view_id}
        modal.version += 1

    def _home(self, p: dict[str, Any]) -> None:
        user = str(p.get("user_id") or "")
        view = json_obj(p.get("view"))
        self.home_views[user] = view
        if user not in self.want_home:
            return
        self.want_home.discard(user)
        self._numbering = ("home", user)
        rendered = self.renderer.render("", view.get("blocks") or [])
        self._numbering = None
        home = Shown("home", user, "", view.get("blocks") or [], rendered=rendered)
        for choice in rendered.choices:
            self.targets[choice.number] = ClickTarget(choice.number, home, choice)
        style = self.screen.style
        header = style.bold(f"App Home of {self.user_name(user)}")
        self.screen.show([header] + [BODY_INDENT + line for line in rendered.lines])

    # drawing ---------------------------------------------------------------------------
    def _frame(self, message: Shown, lines: list[str]) -> list[str]:
        """The lines of a message with where it is and who sees it."""
        style = self.screen.style
        if message.thread_ts:
            out = []
            thread = (message.channel, message.thread_ts)
            if self.screen.last_tag != ("thread", *thread):
                parent = self.messages.get(thread)
                label = parent.rendered.body[0].strip() if parent and parent.rendered.body \
                    else "a message"
                out.append(BODY_INDENT + style.dim(f"↳ thread of: {label}"))
            mark = ""
            if message.ephemeral_for:
                mark = style.yellow(self._only(message.ephemeral_for)) + " "
            for index, line in enumerate(lines or [""]):
                out.append((THREAD_INDENT + (mark if index == 0 else "") + line).rstrip())
            return out
        where = style.dim(self.channel_name(message.channel))
        if message.ephemeral_for:
            who = style.yellow(self._only(message.ephemeral_for))
        else:
            who = style.bold("Playbot")
        if len(lines) == 1:
            return [f"{where} {who}: {lines[0]}"]
        return [f"{where} {who}:"] + [BODY_INDENT + line for line in lines]

    def _only(self, user: str) -> str:
        if user == self.current_user():
            return "(only you)"
        return f"(only {self.user_name(user)})"


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")
