"""Requests the way Slack sends them, on behalf of the console's user.

Slash commands go out form-encoded; button presses (`block_actions`), modal field actions
and modal submissions (`view_submission`) go out as `payload=<json>` — signed with the
app's signing secret and posted over loopback HTTP to the real `/slack/events` of the real
WSGI app (through `bot.fake_slack.SlackSender`). The payloads carry what Slack puts in them:
user, team, channel, container, the message the button was on, the action's action_id,
block_id, value or selected option, a trigger_id and a response_url served by the fake.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Any

from bot.console.conversation import ClickTarget, Conversation, Modal, Origin
from bot.console.render import Choice
from bot.fake_slack import FakeSlack, SlackResponse, SlackSender


@dataclass(frozen=True)
class Person:
    """Who the console's user is being: a username and its Slack user id."""

    username: str
    slack_id: str


class SlackRequests:
    """Builds and sends Slack's requests to the app; remembers what their replies belong to."""

    def __init__(self, sender: SlackSender, fake: FakeSlack, conversation: Conversation,
                 channel: str, channel_name: str) -> None:
        self.sender = sender
        self.fake = fake
        self.conversation = conversation
        self.channel = channel
        self.channel_name = channel_name
        self._triggers = itertools.count(1)

    # helpers ---------------------------------------------------------------------------
    def _trigger(self, person: Person) -> str:
        trigger = f"{next(self._triggers)}.{int(time.time())}.{secrets.token_hex(8)}"
        self.conversation.remember_trigger(trigger, person.slack_id)
        return trigger

    def _user(self, person: Person) -> dict[str, Any]:
        return {"id": person.slack_id, "username": person.username, "name": person.username,
                "team_id": FakeSlack.TEAM_ID}

    def _response_url(self, origin: Origin) -> str:
        url = self.fake.response_url(origin.user)
        self.conversation.remember_origin(url, origin)
        return url

    # slash commands --------------------------------------------------------------------
    def command(self, person: Person, command: str, text: str) -> SlackResponse:
        """A slash command typed in the console's channel."""
        return self.sender.command(command, text, user=person.slack_id, channel=self.channel,
                                   user_name=person.username, trigger_id=self._trigger(person))

    # buttons and selects on messages -----------------------------------------------------
    def click(self, person: Person, target: ClickTarget) -> SlackResponse:
        """Press a button (or pick a select/overflow option) on a message or App Home."""
        message = target.message
        action = _action(target.choice)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "token": "unused-verification-token",
            "user": self._user(person),
            "trigger_id": self._trigger(person),
            "actions": [action],
            "state": {"values": {}},
            "is_enterprise_install": False,
            "enterprise": None,
        }
        if message is not None and message.channel == "home":
            view = dict(self.conversation.home_views.get(person.slack_id) or {})
            view.setdefault("id", f"V_HOME_{person.slack_id}")
            view.setdefault("type", "home")
            payload["container"] = {"type": "view", "view_id": view["id"]}
            payload["view"] = view
            return self.sender.interaction(payload)
        if message is None:
            raise ValueError("that choice is not on a message")
        channel = message.channel
        payload["channel"] = {"id": channel, "name": self.channel_name_of(channel)}
        container: dict[str, Any] = {"type": "message", "message_ts": message.ts,
                                     "channel_id": channel,
                                     "is_ephemeral": bool(message.ephemeral_for)}
        if message.thread_ts:
            container["thread_ts"] = message.thread_ts
        payload["container"] = container
        if not message.ephemeral_for:  # Slack leaves the message out for ephemeral ones
            shown: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text,
                                     "blocks": message.blocks, "user": FakeSlack.BOT_USER_ID,
                                     "bot_id": "B_PLAYBOT", "team": FakeSlack.TEAM_ID}
            if message.thread_ts:
                shown["thread_ts"] = message.thread_ts
            payload["message"] = shown
        payload["response_url"] = self._response_url(
            Origin(user=person.slack_id, channel=channel, message=message.key))
        return self.sender.interaction(payload)

    def channel_name_of(self, channel: str) -> str:
        return self.channel_name if channel == self.channel else channel.lower()

    # modals ----------------------------------------------------------------------------
    def view_action(self, person: Person, modal: Modal, block_id: str, element: dict[str, Any],
                    state: dict[str, Any], answer: dict[str, Any]) -> SlackResponse:
        """An input in a modal that dispatches actions (e.g. choosing the playbook)."""
        action = {"type": element.get("type"), "action_id": element.get("action_id"),
                  "block_id": block_id, "action_ts": f"{time.time():.6f}", **answer}
        payload = {
            "type": "block_actions",
            "token": "unused-verification-token",
            "user": self._user(person),
            "trigger_id": self._trigger(person),
            "container": {"type": "view", "view_id": modal.id},
            "view": self._view(modal, state),
            "actions": [action],
            "is_enterprise_install": False,
        }
        return self.sender.interaction(payload)

    def submit(self, person: Person, modal: Modal, state: dict[str, Any]) -> SlackResponse:
        """Submit a modal with the given `state.values`."""
        payload = {
            "type": "view_submission",
            "token": "unused-verification-token",
            "user": self._user(person),
            "trigger_id": self._trigger(person),
            "view": self._view(modal, state),
            "response_urls": [],
            "is_enterprise_install": False,
        }
        return self.sender.interaction(payload)

    def close(self, person: Person, modal: Modal, state: dict[str, Any]) -> SlackResponse | None:
        """Tell the app the user closed the modal, if it asked to hear about that."""
        if not modal.view.get("notify_on_close"):
            return None
        payload = {"type": "view_closed", "user": self._user(person),
                   "view": self._view(modal, state), "is_cleared": False,
                   "token": "unused-verification-token"}
        return self.sender.interaction(payload)

    def _view(self, modal: Modal, state: dict[str, Any]) -> dict[str, Any]:
        view = dict(modal.view)
        view.update({
            "id": modal.id,
            "team_id": FakeSlack.TEAM_ID,
            "app_id": "A_PLAYBOT",
            "bot_id": "B_PLAYBOT",
            "state": {"values": state},
            "hash": f"{int(time.time())}.{modal.version}",
            "private_metadata": view.get("private_metadata") or "",
            "root_view_id": modal.id,
            "previous_view_id": None,
        })
        return view

    # events ----------------------------------------------------------------------------
    def open_home(self, person: Person) -> SlackResponse:
        """The user opened the app's Home tab."""
        return self.sender.event({"type": "app_home_opened", "user": person.slack_id,
                                  "channel": f"D_{person.slack_id}", "tab": "home",
                                  "event_ts": f"{time.time():.6f}"})


def _action(choice: Choice) -> dict[str, Any]:
    element = choice.element
    action: dict[str, Any] = {"type": element.get("type"), "action_id": choice.action_id,
                              "block_id": choice.block_id, "action_ts": f"{time.time():.6f}"}
    if element.get("type") == "button":
        action["text"] = element.get("text")
        if "value" in element:
            action["value"] = element["value"]
        if element.get("style"):
            action["style"] = element["style"]
    elif choice.option is not None:
        action["selected_option"] = choice.option
    return action
