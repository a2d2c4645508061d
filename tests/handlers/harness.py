"""A real Playbot web app on loopback, a fake Slack Web API, and a readable way to talk to them.

    result = slack.command("/run-playbook", "ping local", user="U_ALICE")
    assert result.status == 200
    assert "Received" in result.ack_text
    assert result.posted[0].channel == "C_OPS"

`SlackHarness` starts waitress with the real WSGI app (signature checks, Bolt, handlers),
sends requests signed the way Slack signs them, waits until the app's background work for
the request is done, and returns a `Result` with what was acked and what the app sent to
Slack because of that request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import select

from bot.fake_slack import Call, FakeSlack, Message, SlackResponse, SlackSender
from bot.runtime import Runtime, build_runtime
from bot.settings import Settings
from bot.web import WebServer, make_server
from core.errors import QueueUnavailable
from db.models import AuditLog, Job, Ticket, User

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"


class RecordingQueue:
    """A JobQueue that records what was enqueued; `down = True` makes it unavailable."""

    def __init__(self) -> None:
        self.enqueued: list[str] = []
        self.down = False
        self._lock = threading.Lock()

    def enqueue(self, job_id: str) -> str:
        if self.down:
            raise QueueUnavailable("the job queue is unreachable (test)")
        with self._lock:
            self.enqueued.append(job_id)
            return f"msg-{len(self.enqueued)}"

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("queue down (test)")


def blocks_text(blocks: Iterable[Mapping[str, Any]] | None) -> str:
    """All human-readable text inside Block Kit blocks, one line per text object."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
                out.append(str(node["text"]))
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(list(blocks or []))
    return "\n".join(out)


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value or [])


@dataclass
class Reply:
    """A message only the user saw (response_url, chat.postEphemeral) or a DM."""

    via: str
    text: str
    blocks: list[dict[str, Any]]

    @property
    def full_text(self) -> str:
        return (self.text + "\n" + blocks_text(self.blocks)).strip()


@dataclass
class Result:
    """What one request to the app produced."""

    response: SlackResponse
    calls: list[Call]
    fake: FakeSlack
    user: str | None = None
    replies: list[Reply] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def ack(self) -> Any:
        body = self.response.body
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return body

    @property
    def ack_text(self) -> str:
        ack = self.ack
        if isinstance(ack, dict):
            return (str(ack.get("text") or "") + "\n" + blocks_text(ack.get("blocks"))).strip()
        return str(ack or "")

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def posted(self) -> list[Message]:
        """Channel messages (and DMs) the app posted while handling this request."""
        out = []
        for call in self.calls_to("chat.postMessage"):
            out.append(Message(channel=call.params.get("channel"), ts="",
                               text=call.params.get("text") or "",
                               blocks=_blocks(call.params.get("blocks"))))
        return out

    @property
    def posted_text(self) -> str:
        return "\n".join(m.text + "\n" + blocks_text(m.blocks) for m in self.posted)

    @property
    def reply_text(self) -> str:
        """Everything only the user saw: the ack text, response_url posts, ephemerals, DMs."""
        parts = [self.ack_text] + [r.full_text for r in self.replies]
        return "\n".join(p for p in parts if p)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Views opened or updated while handling this request (latest last)."""
        out = []
        for call in self.calls:
            if call.method in ("views.open", "views.update", "views.push"):
                view = call.params.get("view")
                out.append(json.loads(view) if isinstance(view, str) else view)
        return out

    @property
    def updated(self) -> list[Call]:
        return self.calls_to("chat.update")


class SlackHarness:
    """The running app plus FakeSlack plus a signed-request sender."""

    def __init__(self, fake: FakeSlack, runtime: Runtime, server: WebServer,
                 queue: RecordingQueue) -> None:
        self.fake = fake
        self.runtime = runtime
        self.server = server
        self.queue = queue
        self.sender = SlackSender(server.events_url, SIGNING_SECRET, fake)
        self.session_factory = runtime.session_factory
        self._clicks = 0

    # requests ------------------------------------------------------------------------
    def command(self, command: str, text: str = "", *, user: str, channel: str = "C_OPS",
                **kwargs: Any) -> Result:
        return self._run(lambda: self.sender.command(command, text, user=user,
                                                     channel=channel, **kwargs), user)

    def click(self, action_id: str, value: str, *, user: str, channel: str | None = "C_OPS",
              message_ts: str | None = None, view: dict[str, Any] | None = None,
              extra_headers: dict[str, str] | None = None,
              action: dict[str, Any] | None = None,
              user_team: str = FakeSlack.TEAM_ID, trigger_id: str | None = None) -> Result:
        """Click a button (or choose in a select, with `action=`) on a message or a view.

        user_team: the clicking user's own workspace (another organisation's for a Slack
        Connect user in a shared channel; the payload's `team` stays the install's).
        trigger_id: new for every click, as in Slack; pass one to deliver a click again."""
        element = action or {"type": "button", "value": value}
        self._clicks += 1
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower().removeprefix("u_"),
                     "team_id": user_team},
            "trigger_id": trigger_id or f"trigger-click-{self._clicks}-{len(self.fake.calls)}",
            "actions": [{"action_id": action_id, "block_id": "b",
                         "action_ts": "1700000000.000001", **element}],
        }
        if view is not None:
            payload["view"] = view
            payload["container"] = {"type": "view", "view_id": view.get("id")}
            payload["response_url"] = None  # Slack gives none for clicks in views (Home, modals)
        else:
            ts = message_ts or "1700000000.000100"
            payload["container"] = {"type": "message", "message_ts": ts,
                                    "channel_id": channel}
            payload["channel"] = {"id": channel}
            payload["message"] = {"ts": ts}
        return self._run(lambda: self.sender.interaction(payload, extra_headers=extra_headers),
                         user)

    def submit(self, view: dict[str, Any], values: Mapping[str, Any], *, user: str) -> Result:
        """Submit a modal; `values` maps block_id to the element state Slack would send."""
        state = {block_id: {element_action(view, block_id): value}
                 for block_id, value in values.items()}
        submitted = {**view, "state": {"values": state}, "hash": "h1"}
        payload = {"type": "view_submission",
                   "user": {"id": user, "username": user.lower().removeprefix("u_"),
                            "team_id": FakeSlack.TEAM_ID},
                   "trigger_id": f"trigger-submit-{len(self.fake.calls)}",
                   "view": submitted}
        return self._run(lambda: self.sender.interaction(payload), user)

    def event(self, event: dict[str, Any], *, user: str | None = None) -> Result:
        return self._run(lambda: self.sender.event(event), user)

    def open_home(self, user: str) -> Result:
        return self.event({"type": "app_home_opened", "user": user, "tab": "home",
                           "channel": f"D_{user}"}, user=user)

    # database --------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        """Every job, oldest first (fresh from the database)."""
        with self.session_factory() as session:
            return list(session.scalars(select(Job).order_by(Job.id)).unique())

    def job(self, job_id: str) -> Job:
        with self.session_factory() as session:
            return session.scalars(select(Job).where(Job.job_id == job_id)).unique().one()

    def tickets(self) -> list[Ticket]:
        with self.session_factory() as session:
            tickets = list(session.scalars(select(Ticket).order_by(Ticket.id)).unique())
            for ticket in tickets:
                _ = (ticket.job, ticket.assignee)
            return tickets

    def audit(self, action: str | None = None) -> list[AuditLog]:
        """Audit rows, oldest first, optionally of one action."""
        with self.session_factory() as session:
            query = select(AuditLog).order_by(AuditLog.id)
            if action is not None:
                query = query.where(AuditLog.action == action)
            return list(session.scalars(query))

    def user(self, slack_id: str) -> User | None:
        with self.session_factory() as session:
            return session.scalar(select(User).where(User.slack_user_id == slack_id))

    # plumbing ------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 15.0) -> None:
        assert self.runtime.wait_idle(timeout), "background work did not finish"

    def _run(self, send: Any, user: str | None) -> Result:
        self.wait_idle()
        start = len(self.fake.calls)
        response = send()
        self.wait_idle()
        calls = list(self.fake.calls[start:])
        result = Result(response=response, calls=calls, fake=self.fake, user=user)
        for call in calls:
            p = call.params
            if call.method == "response_url":
                result.replies.append(Reply("response_url", p.get("text") or "",
                                            _blocks(p.get("blocks"))))
            elif call.method == "chat.postEphemeral":
                result.replies.append(Reply("ephemeral", p.get("text") or "",
                                            _blocks(p.get("blocks"))))
            elif call.method == "chat.postMessage" and str(p.get("channel", "")).startswith("D_"):
                result.replies.append(Reply("dm", p.get("text") or "", _blocks(p.get("blocks"))))
        return result

    def close(self) -> None:
        self.server.stop()
        self.runtime.close()


def element_action(view: Mapping[str, Any], block_id: str) -> str:
    """The action_id of the input element in `block_id` of `view`."""
    for block in view.get("blocks", []):
        if block.get("block_id") == block_id:
            return block.get("element", {}).get("action_id", "value")
    raise KeyError(f"no block {block_id!r} in the view")


def text_value(text: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": text}


def select_value(value: str) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": {"value": value,
                                                          "text": {"type": "plain_text",
                                                                   "text": value}}}


def number_value(value: str) -> dict[str, Any]:
    return {"type": "number_input", "value": value}


def checkbox_value(checked: bool, value: str = "true") -> dict[str, Any]:
    options = [{"value": value, "text": {"type": "plain_text", "text": value}}] if checked else []
    return {"type": "checkboxes", "selected_options": options}


def start_harness(settings: Settings, fake: FakeSlack, queue: Any | None = None,
                  session_factory: Any = None) -> SlackHarness:
    """Build the runtime against `fake` and serve it on a free loopback port."""
    queue = queue if queue is not None else RecordingQueue()
    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url)
    runtime = build_runtime(settings, client=client, queue=queue,
                            session_factory=session_factory)
    server = make_server(runtime, "127.0.0.1", 0).start()
    return SlackHarness(fake, runtime, server, queue)
