"""A stand-in for Slack's Web API on loopback, for tests and `playbot console`.

`FakeSlack` is a real HTTP server: the app's `WebClient(base_url=fake.api_url)` talks to it
exactly as it talks to slack.com. It keeps channels, messages (with threads and in-place
updates), ephemeral messages, views and uploaded files, records every call, and can be told to
fail the way Slack fails (`not_in_channel` for a channel, 429 with Retry-After, slowness).
`subscribe(fn)` lets the console draw each call as it arrives.

`sign_request` / `SlackSender` build requests the way Slack sends them to our endpoint.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_sdk.signature import SignatureVerifier

logger = logging.getLogger(__name__)


@dataclass
class Call:
    """One Web API call the app made: method name and its parameters (JSON-decoded)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str | None = None
    thread_ts: str | None = None
    ephemeral_for: str | None = None
    updated: int = 0


class FakeSlack:
    """Fake Slack Web API server. Use as a context manager or call `start()` / `stop()`."""

    BOT_USER_ID = "U_PLAYBOT"
    TEAM_ID = "T_PLAYBOT"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.RLock()
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.views: list[dict[str, Any]] = []
        self.home_views: dict[str, dict[str, Any]] = {}
        self.files: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # what was posted to response_urls
        self.channel_errors: dict[str, str] = {}  # channel -> Slack error code
        self.users: dict[str, dict[str, Any]] = {}
        self._rate_limited = 0
        self._retry_after = 1
        self.latency = 0.0
        self._subscribers: list[Callable[[Call], None]] = []
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body, headers = fake._handle(self.path, self.headers, raw)
                payload = json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """What to pass as `WebClient(base_url=...)` / SLACK_API_URL."""
        return f"{self.base_url}/api/"

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-slack")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # behaviour switches ----------------------------------------------------------------
    def fail_channel(self, channel: str, error: str = "not_in_channel") -> None:
        """Make every post to `channel` fail with Slack's `error` code."""
        self.channel_errors[channel] = error

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        """Answer the next `times` calls with HTTP 429 and Retry-After."""
        with self._lock:
            self._rate_limited = times
            self._retry_after = retry_after

    def subscribe(self, callback: Callable[[Call], None]) -> None:
        """Call `callback(call)` after each Web API call has been applied."""
        self._subscribers.append(callback)

    def response_url(self, key: str = "cmd") -> str:
        """A response_url for a slash command or action, served by this fake."""
        return f"{self.base_url}/response/{key}-{next(self._ids)}"

    # queries for tests -----------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def channel_messages(self, channel: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.channel == channel and m.thread_ts is None
                    and m.ephemeral_for is None]

    def thread(self, channel: str, ts: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    def ephemeral(self, user: str | None = None) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.ephemeral_for is not None
                    and (user is None or m.ephemeral_for == user)]

    def find_message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            for message in self.messages:
                if message.channel == channel and message.ts == ts:
                    return message
        return None

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self.views.clear()
            self.home_views.clear()
            self.files.clear()
            self.responses.clear()
            self.channel_errors.clear()
            self._rate_limited = 0
            self.latency = 0.0

    # request handling ------------------------------------------------------------------
    def _handle(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.latency:
            time.sleep(self.latency)
        params = _decode(headers.get("Content-Type", ""), raw)
        if path.startswith("/response/"):
            with self._lock:
                self.responses.append(params)
                call = Call("response_url", params)
                self.calls.append(call)
                self._apply_response(path, params)
            self._notify(call)
            return 200, {"ok": True}, {}
        if path.startswith("/upload/"):
            file_id = path.rsplit("/", 1)[-1]
            with self._lock:
                pending = self._pending_uploads.get(file_id, {})
                pending["content"] = raw
            return 200, {"ok": True}, {}
        method = path.removeprefix("/api/").split("?", 1)[0]
        with self._lock:
            if self._rate_limited > 0:
                self._rate_limited -= 1
                self.calls.append(Call(method + ":429", params))
                return 429, {"ok": False, "error": "ratelimited"}, {
                    "Retry-After": str(self._retry_after)}
            call = Call(method, params)
            self.calls.append(call)
            body = self._dispatch(method, params)
        self._notify(call)
        return 200, body, {}

    def _notify(self, call: Call) -> None:
        for callback in list(self._subscribers):
            try:
                callback(call)
            except Exception:  # a drawing bug must not break the API, but must be seen
                logger.exception("FakeSlack subscriber failed on %s", call.method)

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.000100"

    def _dispatch(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": True}
        return handler(p)

    def _channel_error(self, channel: str | None) -> dict[str, Any] | None:
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.channel_errors:
            return {"ok": False, "error": self.channel_errors[channel]}
        return None

    def _api_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": self.BOT_USER_ID, "team_id": self.TEAM_ID,
                "bot_id": "B_PLAYBOT", "url": "https://playbot.example/"}

    def _api_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if error := self._channel_error(channel):
            return error
        message = Message(channel=channel, ts=self._next_ts(), text=p.get("text") or "",
                          blocks=json_list(p.get("blocks")), user=self.BOT_USER_ID,
                          thread_ts=p.get("thread_ts"))
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts}}

    def _api_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if error := self._channel_error(channel):
            return error
        message = Message(channel=channel, ts=self._next_ts(), text=p.get("text") or "",
                          blocks=json_list(p.get("blocks")), ephemeral_for=p.get("user"),
                          thread_ts=p.get("thread_ts"))
        self.messages.append(message)
        return {"ok": True, "message_ts": message.ts}

    def _api_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        message = self.find_message(p.get("channel"), p.get("ts"))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if "text" in p:
            message.text = p.get("text") or ""
        if "blocks" in p:
            message.blocks = json_list(p.get("blocks"))
        message.updated += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _api_chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        ts = str(p.get("message_ts", "")).replace(".", "")
        return {"ok": True, "permalink": f"https://playbot.example/archives/{p.get('channel')}/p{ts}"}

    def _api_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        users = str(p.get("users", "")).split(",")[0]
        return {"ok": True, "channel": {"id": f"D_{users}"}}

    def _api_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = p.get("user", "")
        info = self.users.get(user, {"id": user, "name": user.lower().removeprefix("u_"),
                                     "profile": {"email": None}})
        return {"ok": True, "user": info}

    def _api_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view = json_obj(p.get("view"))
        view_id = f"V{next(self._ids)}"
        view["id"] = view_id
        self.views.append(view)
        return {"ok": True, "view": view}

    def _api_views_update(self, p: dict[str, Any]) -> dict[str, Any]:
        view = json_obj(p.get("view"))
        view["id"] = p.get("view_id") or f"V{next(self._ids)}"
        self.views.append(view)
        return {"ok": True, "view": view}

    def _api_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        view = json_obj(p.get("view"))
        self.home_views[p.get("user_id", "")] = view
        return {"ok": True, "view": view}

    def _api_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = f"F{next(self._ids)}"
        self._pending_uploads[file_id] = {"id": file_id, "filename": p.get("filename")}
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = json_list(p.get("files"))
        done = []
        for entry in files:
            record = self._pending_uploads.pop(entry.get("id"), {"id": entry.get("id")})
            record.update(title=entry.get("title"), channel=p.get("channel_id"),
                          thread_ts=p.get("thread_ts"), comment=p.get("initial_comment"))
            self.files.append(record)
            done.append({"id": record["id"], "title": record.get("title")})
        return {"ok": True, "files": done}

    def _apply_response(self, path: str, p: dict[str, Any]) -> None:
        """What a response_url post does in Slack: an ephemeral reply, or a message change."""
        text = p.get("text") or ""
        blocks = json_list(p.get("blocks"))
        if p.get("response_type") == "in_channel":
            self.messages.append(Message(channel=p.get("channel", "response"), ts=self._next_ts(),
                                         text=text, blocks=blocks))
            return
        self.messages.append(Message(channel="response", ts=self._next_ts(), text=text,
                                     blocks=blocks, ephemeral_for=path.rsplit("/", 1)[-1]))


def _decode(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            return {}
    parsed = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def json_list(value: Any) -> list[dict[str, Any]]:
    """A Web API list parameter (blocks, files) whether sent as JSON text or as a list."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value)


def json_obj(value: Any) -> dict[str, Any]:
    """A Web API object parameter (view) whether sent as JSON text or as a dict."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {}
    return dict(value or {})


# Requests the way Slack sends them ------------------------------------------------------


def sign_request(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """The X-Slack-Signature headers Slack would send with `body`."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


# What Slack sends of its own markup in a slash command's text, unescaped: user and channel
# mentions and special mentions (@channel, @here). Everything else has & < > escaped.
_SLACK_MARKUP = re.compile(r"<(?:[@#][A-Z0-9_]+(?:\|[^<>]*)?|![a-z]+(?:\^[^<>]*)?(?:\|[^<>]*)?)>")


def slack_escaped(text: str) -> str:
    """A slash command's text as Slack sends it: `&`, `<`, `>` typed by the user escaped
    (`&amp;`, `&lt;`, `&gt;`); mentions Slack itself wrote (`<@U…|name>`, `<#C…>`,
    `<!channel>`) left as they are."""
    out, last = [], 0
    for match in _SLACK_MARKUP.finditer(text):
        out.append(_escape(text[last:match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape(text[last:]))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class SlackResponse:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackSender:
    """Sends signed slash commands and interaction payloads to our real `/slack/events`."""

    def __init__(self, endpoint: str, signing_secret: str, fake: FakeSlack | None = None,
                 team_id: str = FakeSlack.TEAM_ID) -> None:
        self.endpoint = endpoint
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self._trigger = itertools.count(1)

    def command(self, command: str, text: str = "", *, user: str, channel: str = "C_OPS",
                user_name: str | None = None, extra_headers: dict[str, str] | None = None,
                trigger_id: str | None = None, timestamp: int | None = None,
                signing_secret: str | None = None) -> SlackResponse:
        form = {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "team_domain": "playbot",
            "channel_id": channel,
            "channel_name": channel.lower(),
            "user_id": user,
            "user_name": user_name or user.lower().removeprefix("u_"),
            "command": command,
            "text": slack_escaped(text),
            "api_app_id": "A_PLAYBOT",
            "response_url": self.fake.response_url(user) if self.fake else "",
            "trigger_id": trigger_id or f"trigger-{next(self._trigger)}",
        }
        body = urllib.parse.urlencode(form)
        return self._post(body, "application/x-www-form-urlencoded", extra_headers, timestamp,
                          signing_secret)

    def interaction(self, payload: dict[str, Any], *, extra_headers: dict[str, str] | None = None,
                    timestamp: int | None = None) -> SlackResponse:
        payload = {"team": {"id": self.team_id}, "api_app_id": "A_PLAYBOT", **payload}
        # Slack gives a response_url to clicks on messages only: a click in a view (App Home,
        # a modal) has none, and the app must answer it otherwise (a modal, a DM)
        on_message = (payload.get("container") or {}).get("type", "message") == "message"
        if (self.fake and "response_url" not in payload and on_message
                and payload.get("type") == "block_actions"):
            payload["response_url"] = self.fake.response_url(payload.get("user", {}).get("id", "u"))
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return self._post(body, "application/x-www-form-urlencoded", extra_headers, timestamp)

    def event(self, event: dict[str, Any]) -> SlackResponse:
        envelope = {"token": "unused", "team_id": self.team_id, "api_app_id": "A_PLAYBOT",
                    "type": "event_callback", "event": event,
                    "event_id": f"Ev{next(self._trigger)}", "event_time": int(time.time())}
        return self._post(json.dumps(envelope), "application/json", None, None)

    def _post(self, body: str, content_type: str, extra_headers: dict[str, str] | None,
              timestamp: int | None, signing_secret: str | None = None) -> SlackResponse:
        headers = {"Content-Type": content_type,
                   "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                   **sign_request(signing_secret or self.signing_secret, body, timestamp),
                   **(extra_headers or {})}
        request = urllib.request.Request(self.endpoint, data=body.encode(), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return SlackResponse(response.status, response.read().decode())
        except urllib.error.HTTPError as error:
            return SlackResponse(error.code, error.read().decode())
