"""Prometheus metrics of the web process, and the observer the handlers report to.

Metrics live in prometheus_client's default registry (one per process), so `/metrics` also
shows the process and Python collectors. Label values are bounded: request kinds, the fixed
command/action ids of `slackui.ids`, a handful of outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from slackui import ids

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)

HTTP_REQUESTS = Counter(
    "playbot_http_requests_total", "HTTP requests served, by route and status code.",
    ["route", "status"],
)
HTTP_LATENCY = Histogram(
    "playbot_http_request_seconds", "Time to answer an HTTP request, by route.", ["route"],
    buckets=ACK_BUCKETS,
)
SLACK_REQUESTS = Counter(
    "playbot_slack_requests_total",
    "Verified Slack requests dispatched to the app, by kind (command, block_actions, "
    "view_submission, event...) and name (command, action id, callback id, event type).",
    ["kind", "name"],
)
SLACK_ACKS = Counter(
    "playbot_slack_acks_total", "Answers sent back to Slack, by kind and HTTP status.",
    ["kind", "status"],
)
SLACK_ACK_LATENCY = Histogram(
    "playbot_slack_ack_seconds",
    "From request received to the ack being ready (Slack allows 3 s), by kind.", ["kind"],
    buckets=ACK_BUCKETS,
)
SLACK_RETRIES = Counter(
    "playbot_slack_retried_deliveries_total",
    "Requests Slack delivered again (X-Slack-Retry-Num), by kind.", ["kind"],
)
JOBS_LAUNCHED = Counter(
    "playbot_jobs_launched_total",
    "Jobs created from Slack, by outcome (queued, queue_unavailable, awaiting_approval, "
    "duplicate).", ["outcome"],
)
ERRORS = Counter(
    "playbot_errors_total", "Unexpected errors caught by the global error handler, by where.",
    ["where"],
)

KNOWN_NAMES = (ids.ALL_COMMANDS | ids.ALL_ACTION_IDS | ids.ALL_CALLBACK_IDS | ids.ALL_EVENTS
               | {ids.EVENT_MESSAGE})


class PrometheusObserver:
    """What the handlers report (see `handlers.deps.Observer`), counted in Prometheus."""

    def job_launched(self, outcome: str, count: int = 1) -> None:
        JOBS_LAUNCHED.labels(outcome=outcome).inc(count)

    def error(self, where: str) -> None:
        ERRORS.labels(where=where).inc()


def classify(body: Mapping[str, Any]) -> tuple[str, str]:
    """(kind, name) of a Slack request's parsed body (as Bolt parsed it), for metric labels."""
    if "command" in body and "type" not in body:
        return "command", _bounded(str(body["command"]))
    kind = str(body.get("type") or "other")
    if kind == "event_callback":
        return "event", _bounded(str((body.get("event") or {}).get("type", "")))
    if kind == "block_actions":
        first = (body.get("actions") or [{}])[0]
        return kind, _bounded(str(first.get("action_id", "")))
    if kind in ("view_submission", "view_closed"):
        return kind, _bounded(str((body.get("view") or {}).get("callback_id", "")))
    return _bounded_kind(kind), "other"


def _bounded(name: str) -> str:
    return name if name in KNOWN_NAMES else "other"


def _bounded_kind(kind: str) -> str:
    known = {"url_verification", "shortcut", "message_action", "block_suggestion"}
    return kind if kind in known else "other"


def exposition() -> tuple[bytes, str]:
    """The /metrics body and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
