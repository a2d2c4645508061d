"""HTTP mode: the WSGI app (`POST /slack/events`, `GET /healthz`, `GET /metrics`, the HTTP API
under `/api/` and the live log page `/jobs/{id}`) and waitress.

`/api/…` and `/jobs/…` go to the Flask app of `handlers.api` (its own auth, rate limit,
audit and problem details; see that package), built from this runtime's dependencies.

`/slack/events` is Bolt's WSGI adapter behind an edge (`PlaybotRequestHandler`) that refuses what Slack
never sends before Bolt or a listener sees it:

- a body over `MAX_BODY_BYTES` (1 MiB) is refused with 413 before it is read whole: waitress
  (`max_request_body_size`) answers 413 from the Content-Length header alone, and stops
  reading a chunked body at the limit; under another WSGI server the edge checks
  Content-Length and reads at most the limit. 1 MiB is above anything Slack sends this app:
  a message's text is cut at 40,000 characters (480 kB as percent-encoded UTF-8, the worst
  case of a slash command), a message holds at most 50 blocks and a modal 100, of at most
  3,000 characters of text each, and our one event (`app_home_opened`) is small.
- a missing, non-numeric or stale (over 5 minutes) `X-Slack-Request-Timestamp`, or a bad
  signature, is a 401; the body of such a request is never logged, nor passed to Bolt.
- a body that is not UTF-8, form data whose `payload` is not a JSON object, a JSON body that
  is not an object, or a `block_actions` without actions is a 400 — never a 500.
- Slack's `ssl_check=1` probe (which Bolt, too, answers before verifying) gets an empty 200.
- a verified request no listener handles (an unsubscribed event such as `app_rate_limited`,
  an unknown action) gets an empty 200 and does nothing (Slack counts non-200 answers
  against the app's event delivery).

The body is parsed once, by Bolt's own `BoltRequest` (`parse_qsl` and `json.loads`: time
linear in its length); the edge checks the parsed shape. A form body Bolt would misread —
one whose text merely contains "payload" (`note=payload` in a slash command), which Bolt
takes for an interaction and reads as empty — is parsed by the edge (`misread_form`) and
given to Bolt parsed. Whatever of a request reaches a log
line (peer, user agent, a reason) goes through `loggable`: control characters escaped,
truncated; `EscapingLogFilter` does the same to Bolt's own log lines.

The edge also hands the handlers the peer address the server saw (in a header we set
ourselves, overwriting any a client sent) for the audit trail, and times each dispatch per
kind of Slack request for `/metrics`.

`/healthz` checks the database (`SELECT 1`) and the queue (its `ping()`, or Redis `PING`)
concurrently, each bounded by a short timeout, and answers 200 when both are fine, 503
otherwise; it never hangs on a dead dependency.

`serve()` runs waitress (a production, thread-pooled WSGI server) until interrupted;
`make_server()` gives tests and tools a server on any port (0 = free one) to run in a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import waitress
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text

from bot import metrics
from bot.links import log_links
from handlers.api import ApiConfig, create_api
from handlers.context import REMOTE_ADDR_HEADER

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
ROUTES = (EVENTS_PATH, "/healthz", "/metrics")
API_PREFIXES = ("/api/", "/jobs/")  # the HTTP API and the live log page (handlers.api)
HEALTH_TIMEOUT_SECONDS = 2.0
StartResponse = Callable[..., Any]

MAX_BODY_BYTES = 1024 * 1024  # see the module docstring for why 1 MiB
MAX_TIMESTAMP_SKEW_SECONDS = 5 * 60  # Slack's own rule, as Bolt and slack_sdk apply it
MAX_LOGGED_CHARS = 200  # of one request-supplied value in a log line
MAX_LOG_LINE_CHARS = 4000  # of one Bolt log line


def loggable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """`value` fit for a log line: control and other non-printable characters escaped (so it
    can never start a new line or fake another entry), truncated to `limit` characters."""
    text_value = str(value)[: limit + 1]  # bounded work, whatever the value's size
    if not text_value.isprintable():
        text_value = "".join(
            char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
            for char in text_value)
    if len(text_value) > limit:
        return f"{text_value[:limit]}…[truncated]"
    return text_value


class EscapingLogFilter(logging.Filter):
    """Escapes and truncates every log line of the logger it is on (Bolt's: see bot.app).

    Bolt's warnings name action, block and callback ids taken from the request; with this
    filter they can never carry a line break or an unbounded value into the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = loggable(message, MAX_LOG_LINE_CHARS)
        if safe != message or record.args:
            record.msg, record.args = safe, None
        return True


class Refused(Exception):
    """A request the edge answers itself: `status`, a fixed public `message`, a log `reason`."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message
        self.reason = reason


def read_body(environ: dict[str, Any], limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, never reading more than `limit` + 1 bytes of it.

    Raises Refused: 413 when Content-Length (or a body without one) exceeds `limit`, 400 for
    a Content-Length that is not a number.
    """
    stream = environ.get("wsgi.input")
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        if not declared.isdigit():
            raise Refused(400, "malformed request", "Content-Length is not a number")
        length = int(declared)
        if length > limit:
            raise Refused(413, "request body too large",
                          f"Content-Length {length} over the limit of {limit} bytes")
        data = stream.read(length) if stream is not None and length else b""
    elif stream is not None and environ.get("wsgi.input_terminated"):
        data = stream.read(limit + 1)  # a chunked body on a server that streams it
    else:
        data = b""
    if len(data) > limit:
        raise Refused(413, "request body too large", f"body over the limit of {limit} bytes")
    return data


def is_ssl_check(raw: bytes) -> bool:
    """Whether `raw` is Slack's `ssl_check=1` probe (a short form with no command in it)."""
    if len(raw) > 512 or b"ssl_check=1" not in raw:
        return False
    fields = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    return fields.get("ssl_check") == "1" and not ({"command", "payload"} & fields.keys())


def misread_form(body: str, content_type: str | None) -> dict[str, str] | None:
    """The fields of a form body that Bolt's parser would misread, else None.

    Bolt takes any form body containing the text "payload" for an interaction
    (`payload=<json>`) and, finding no `payload` field, reads it as empty: a slash command
    such as `/run-playbook deploy web-01 note=payload` would reach no listener at all.
    Such a body — form-encoded, "payload" in it, no `payload` field — is parsed here."""
    if "payload" not in body or body.startswith("{") or (
            content_type or "").split(";")[0].strip().lower() == "application/json":
        return None
    fields = dict(parse_qsl(body, keep_blank_values=True))
    return None if "payload" in fields else fields


def check_timestamp(value: str | None, now: float) -> int:
    """The request's X-Slack-Request-Timestamp as a number; Refused (401) when it is missing,
    not a number, or more than 5 minutes from `now`."""
    if not value or not value.isdigit() or len(value) > 12:
        raise Refused(401, "invalid request", "X-Slack-Request-Timestamp missing or not a number")
    stamp = int(value)
    if abs(now - stamp) > MAX_TIMESTAMP_SKEW_SECONDS:
        raise Refused(401, "invalid request", "X-Slack-Request-Timestamp too old or in the future")
    return stamp


def check_shape(body: object) -> None:
    """Refused (400) unless `body` (as Bolt parsed it) has the shape of a Slack request."""
    if not isinstance(body, dict):
        raise Refused(400, "malformed request", "the body is not a JSON object or form")
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions or not all(
                isinstance(action, dict) for action in actions):
            raise Refused(400, "malformed request", "block_actions without actions")
    for key in ("event", "view", "user", "team", "channel", "container", "message"):
        if key in body and body[key] is not None and not isinstance(body[key], dict | str):
            raise Refused(400, "malformed request", f"`{key}` is not an object")
    if kind == "event_callback" and not isinstance(body.get("event"), dict):
        raise Refused(400, "malformed request", "event_callback without an event")


def first_header(headers: dict[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else str(value)


class PlaybotRequestHandler(SlackRequestHandler):
    """Bolt's WSGI adapter behind the edge (see the module docstring), adding the peer
    address and per-kind ack metrics.

    Guarantees: Bolt never sees an unverified request, a body over the limit or a body of
    the wrong shape; none of them gets a 500; an unverified body is never logged.
    """

    def __init__(self, app: Any, path: str, signing_secret: str,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        super().__init__(app, path=path)
        self.verifier = SignatureVerifier(signing_secret)
        self.max_body_bytes = max_body_bytes

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        started = time.perf_counter()
        headers = request.get_headers()
        headers[REMOTE_ADDR_HEADER] = request.environ.get("REMOTE_ADDR", "")
        kind, name = "other", "other"
        try:
            raw = read_body(request.environ, self.max_body_bytes)
            if is_ssl_check(raw):
                # Slack's certificate check of a slash command URL (Bolt, too, answers it
                # before verifying): an empty 200, nothing dispatched.
                return BoltResponse(status=200, body="")
            bolt_request = self._verified_request(raw, request, headers)
            kind, name = metrics.classify(bolt_request.body)  # before listeners can touch it
            response = self.app.dispatch(bolt_request)
            if response.status == 404:
                # No listener matched: an event we never subscribed to, an unknown action.
                response = BoltResponse(status=200, body="")
        except Refused as refusal:
            log.warning("refused a request to %s: %s (peer %s, %s bytes declared, agent %s)",
                        EVENTS_PATH, refusal.reason,
                        loggable(request.environ.get("REMOTE_ADDR", "")),
                        loggable(request.environ.get("CONTENT_LENGTH") or "no", 20),
                        loggable(first_header(headers, "user-agent") or "-"))
            response = BoltResponse(status=refusal.status, body={"error": refusal.message})
        if response.status not in (400, 401, 413):
            metrics.SLACK_REQUESTS.labels(kind=kind, name=name).inc()
            if headers.get("x-slack-retry-num"):
                metrics.SLACK_RETRIES.labels(kind=kind).inc()
        metrics.SLACK_ACKS.labels(kind=kind, status=str(response.status)).inc()
        metrics.SLACK_ACK_LATENCY.labels(kind=kind).observe(time.perf_counter() - started)
        return response

    def _verified_request(self, raw: bytes, request: WsgiHttpRequest,
                          headers: dict[str, Any]) -> BoltRequest:
        """The BoltRequest of a verified, well-formed request, or Refused."""
        timestamp = first_header(headers, "x-slack-request-timestamp")
        check_timestamp(timestamp, time.time())
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = None
        signature = first_header(headers, "x-slack-signature") or ""
        # Verified over the raw bytes' text; a body that is not UTF-8 cannot be Slack's.
        if body is None or not self.verifier.is_valid(body, str(timestamp), signature):
            raise Refused(401, "invalid request", "bad signature")
        try:
            fields = misread_form(body, first_header(headers, "content-type"))
            if fields is not None:
                # Verified above; handed to Bolt already parsed, the one way its request
                # takes a parsed body (in that mode Bolt does not verify again).
                bolt_request = BoltRequest(body=fields, query=request.query_string,
                                           headers=headers, mode="socket_mode")
            else:
                bolt_request = BoltRequest(body=body, query=request.query_string,
                                           headers=headers)
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            # json.loads of a `payload` that is not JSON, or Bolt reading a non-object
            raise Refused(400, "malformed request",
                          f"unparsable body ({type(error).__name__})") from None
        check_shape(bolt_request.body)
        return bolt_request


class HealthChecker:
    """Checks the database and the queue, each within `timeout` seconds."""

    def __init__(self, runtime: Runtime, timeout: float = HEALTH_TIMEOUT_SECONDS) -> None:
        self.runtime = runtime
        self.timeout = timeout
        # Its own small pool: a hung dependency ties up these threads, never waitress's.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="playbot-health")

    def check(self) -> tuple[bool, dict[str, Any]]:
        checks = {"database": self._database, "queue": self._queue}
        futures = {name: self._pool.submit(fn) for name, fn in checks.items()}
        deadline = time.monotonic() + self.timeout
        report: dict[str, Any] = {}
        for name, future in futures.items():
            try:
                detail = future.result(timeout=max(deadline - time.monotonic(), 0.01))
                report[name] = {"ok": True, **({"detail": detail} if detail else {})}
            except FutureTimeout:
                report[name] = {"ok": False, "error": f"no answer within {self.timeout:g}s"}
            except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "down"
                report[name] = {"ok": False, "error": _describe(exc)}
        healthy = all(entry["ok"] for entry in report.values())
        return healthy, {"status": "ok" if healthy else "unavailable", **report}

    def _database(self) -> str | None:
        with self.runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None

    def _queue(self) -> str | None:
        queue = self.runtime.queue
        ping = getattr(queue, "ping", None)
        if callable(ping):
            ping()
            return None
        url = self.runtime.settings.redis_url
        if url is None:
            return "in-process broker"
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
        return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _describe(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"[:300]


class PlaybotWSGI:
    """The WSGI application of the web process: Slack events, health, metrics."""

    def __init__(self, runtime: Runtime) -> None:
        if runtime.app is None:
            raise ValueError("the runtime has no Bolt app; build it with build_runtime()")
        secret = runtime.settings.slack_signing_secret
        if not secret:
            raise ValueError("SLACK_SIGNING_SECRET must be set to serve Slack requests")
        self.slack = PlaybotRequestHandler(runtime.app, EVENTS_PATH, secret)
        self.health = HealthChecker(runtime)
        self.api = create_api(api_config(runtime))  # /api/… and /jobs/{id}: handlers.api

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        route = path if path in ROUTES else (
            "/" + path.split("/")[1] if path.startswith(API_PREFIXES) else "other")
        captured: dict[str, str] = {}

        def recording_start_response(status: str, headers: list[tuple[str, str]],
                                     exc_info: Any = None) -> Any:
            captured["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        try:
            if path == EVENTS_PATH and method == "POST":
                return self.slack(environ, recording_start_response)
            if path == "/healthz" and method in ("GET", "HEAD"):
                healthy, report = self.health.check()
                return _json(recording_start_response, 200 if healthy else 503, report)
            if path == "/metrics" and method == "GET":
                body, content_type = metrics.exposition()
                recording_start_response("200 OK", [("Content-Type", content_type),
                                                    ("Content-Length", str(len(body)))])
                return [body]
            if path.startswith(API_PREFIXES):
                return self.api(environ, recording_start_response)
            if path in ROUTES:
                return _json(recording_start_response, 405, {"error": "method not allowed"})
            return _json(recording_start_response, 404, {"error": "not found"})
        finally:
            metrics.HTTP_REQUESTS.labels(route=route, status=captured.get("status", "500")).inc()
            metrics.HTTP_LATENCY.labels(route=route).observe(time.perf_counter() - started)

    def close(self) -> None:
        self.health.close()


def api_config(runtime: Runtime) -> ApiConfig:
    """What the API app takes from the runtime: deps, Slack client, links, limits."""
    settings = runtime.settings
    return ApiConfig(deps=runtime.deps(), client=runtime.client,
                     links=log_links(settings), api_channel=settings.playbot_api_channel,
                     rate_limit=settings.playbot_api_rate_limit, redis_url=settings.redis_url)


def make_wsgi_app(runtime: Runtime) -> PlaybotWSGI:
    """The WSGI application of the web process (for waitress or any WSGI server)."""
    return PlaybotWSGI(runtime)


def _json(start_response: StartResponse, status: int, payload: dict[str, Any]) -> list[bytes]:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed",
              503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(body))),
                                         ("Cache-Control", "no-store")])
    return [body]


class WebServer:
    """A waitress server around the WSGI app; `start()` runs it in a thread, `stop()` ends it."""

    def __init__(self, runtime: Runtime, host: str = "127.0.0.1", port: int = 0,
                 threads: int = 8) -> None:
        self.runtime = runtime
        self.wsgi_app = make_wsgi_app(runtime)
        # waitress refuses (413) a Content-Length of max_request_body_size or more from the
        # header alone and stops reading a chunked body there: the body is never read whole.
        self._server = waitress.create_server(self.wsgi_app, host=host, port=port,
                                              threads=threads, ident="playbot",
                                              max_request_body_size=MAX_BODY_BYTES + 1)
        self.host = host
        self.port: int = self._server.effective_port  # type: ignore[union-attr]
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def run(self) -> None:
        """Serve until `stop()` is called from another thread (or Ctrl-C)."""
        server = self._server
        socket_map = getattr(server, "_map", None) or getattr(server, "map", {})
        try:
            while not self._stopping.is_set() and socket_map:
                server.asyncore.loop(timeout=0.2, map=socket_map, count=1,  # type: ignore[union-attr]
                                     use_poll=server.adj.asyncore_use_poll)  # type: ignore[union-attr]
        finally:
            # Closed by the thread that polls the sockets, never under its feet.
            server.task_dispatcher.shutdown()  # type: ignore[union-attr]
            server.close()

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.run, name="playbot-web", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask `run()` to return (safe from a signal handler)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop accepting requests, let the current ones finish, release the port."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            # Wake the loop now rather than at its next timeout; it may have just closed
            # the trigger on its own, which is fine.
            with contextlib.suppress(OSError):
                self._server.pull_trigger()  # type: ignore[union-attr]
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.wsgi_app.close()

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(runtime: Runtime, host: str = "127.0.0.1", port: int = 0,
                threads: int = 8) -> WebServer:
    """A waitress server for `runtime` (port 0 picks a free one); call `.start()`."""
    return WebServer(runtime, host, port, threads)


def serve(runtime: Runtime, host: str = "0.0.0.0", port: int | None = None,
          threads: int = 8) -> None:
    """Serve the app over HTTP with waitress until Ctrl-C or SIGTERM (`playbot web`).

    On the way out, requests in progress and the background work they started finish first
    (bounded), then the database is released.
    """
    server = make_server(runtime, host, port if port is not None else runtime.settings.port,
                         threads)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: server.request_stop())
    log.info("Playbot listening on http://%s:%s (Slack events at %s)", host, server.port,
             EVENTS_PATH)
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("Playbot web stopping")
    finally:
        server.stop()
        runtime.close()
