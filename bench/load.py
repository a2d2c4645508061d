"""An HTTP load generator: N clients, each on its own keep-alive connection.

Closed loop by default (each client sends its next request as soon as its last one was
answered); with `rate`, open loop: request i is sent no earlier than i / rate seconds after
the start, as independent users would send them (a client still sends one at a time).
Requests are built and signed before the clock starts, so the clients only send and wait;
each latency is from the first byte sent to the last byte of the answer read.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from bot.fake_slack import sign_request


@dataclass(frozen=True)
class PreparedRequest:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # wall-clock time (time.time()) each request's answer was read, by its index
    answered_at: dict[int, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0


def slash_command(endpoint_path: str, signing_secret: str, command: str, text: str, *,
                  user: str, channel: str, trigger_id: str, response_url: str = "",
                  team_id: str = "T_PLAYBOT") -> PreparedRequest:
    """A slash command signed the way Slack signs it (form body + X-Slack-Signature)."""
    body = urllib.parse.urlencode({
        "token": "unused-verification-token", "team_id": team_id, "team_domain": "playbot",
        "channel_id": channel, "channel_name": channel.lower(), "user_id": user,
        "user_name": user.lower().removeprefix("u_"), "command": command, "text": text,
        "api_app_id": "A_PLAYBOT", "response_url": response_url, "trigger_id": trigger_id,
    })
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
               **sign_request(signing_secret, body)}
    return PreparedRequest(endpoint_path, body.encode(), headers)


def run_load(host: str, port: int, requests: list[PreparedRequest], *, concurrency: int,
             timeout: float = 10.0, rate: float | None = None) -> LoadResult:
    """Send every request once, `concurrency` at a time (at most `rate` a second from the
    start when given); latencies and throughput."""
    result = LoadResult()
    lock = threading.Lock()
    cursor = iter(range(len(requests)))
    start: list[float] = []
    start_gate = threading.Barrier(concurrency + 1,
                                   action=lambda: start.append(time.perf_counter()))

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        latencies: list[float] = []
        answered: dict[int, float] = {}
        statuses: dict[int, int] = {}
        errors: list[str] = []
        start_gate.wait()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            request = requests[index]
            if rate:
                wait = start[0] + index / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            started = time.perf_counter()
            try:
                conn.request("POST", request.path, body=request.body, headers=request.headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                continue
            latencies.append(time.perf_counter() - started)
            answered[index] = time.time()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.close()
        with lock:
            result.latencies.extend(latencies)
            result.errors.extend(errors)
            result.answered_at.update(answered)
            for status, count in statuses.items():
                result.statuses[status] = result.statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, name=f"load-{n}", daemon=True)
               for n in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - began
    return result
