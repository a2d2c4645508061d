"""HTTP mode: the WSGI app (`POST /slack/events`, `GET /healthz`, `GET /metrics`) and waitress.

`/slack/events` is Bolt's WSGI adapter with two additions: the peer address the server saw
is handed to the handlers (in a header we set ourselves, overwriting any a client sent) for
the audit trail, and each dispatch is timed per kind of Slack request for `/metrics`.

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

import waitress
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy import text

from bot import metrics
from handlers.context import REMOTE_ADDR_HEADER

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
ROUTES = (EVENTS_PATH, "/healthz", "/metrics")
HEALTH_TIMEOUT_SECONDS = 2.0
StartResponse = Callable[..., Any]


class PlaybotRequestHandler(SlackRequestHandler):
    """Bolt's WSGI adapter, adding the peer address and per-kind ack metrics."""

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        started = time.perf_counter()
        headers = request.get_headers()
        headers[REMOTE_ADDR_HEADER] = request.environ.get("REMOTE_ADDR", "")
        bolt_request = BoltRequest(body=request.get_body(), query=request.query_string,
                                   headers=headers)
        kind, name = metrics.classify(bolt_request.body)  # before listeners can touch it
        response = self.app.dispatch(bolt_request)
        if response.status != 401:
            metrics.SLACK_REQUESTS.labels(kind=kind, name=name).inc()
            if headers.get("x-slack-retry-num"):
                metrics.SLACK_RETRIES.labels(kind=kind).inc()
        metrics.SLACK_ACKS.labels(kind=kind, status=str(response.status)).inc()
        metrics.SLACK_ACK_LATENCY.labels(kind=kind).observe(time.perf_counter() - started)
        return response


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
        self.slack = PlaybotRequestHandler(runtime.app, path=EVENTS_PATH)
        self.health = HealthChecker(runtime)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        started = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        route = path if path in ROUTES else "other"
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
            if path in ROUTES:
                return _json(recording_start_response, 405, {"error": "method not allowed"})
            return _json(recording_start_response, 404, {"error": "not found"})
        finally:
            metrics.HTTP_REQUESTS.labels(route=route, status=captured.get("status", "500")).inc()
            metrics.HTTP_LATENCY.labels(route=route).observe(time.perf_counter() - started)

    def close(self) -> None:
        self.health.close()


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
        self._server = waitress.create_server(self.wsgi_app, host=host, port=port,
                                              threads=threads, ident="playbot")
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
