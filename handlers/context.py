"""Who sent a Slack request and from where: one `Caller` for commands, actions, views and events.

Slack's requests carry no end-user IP: the request comes from Slack's servers. What the audit
records as `ip_address` is the HTTP peer the web server saw (Slack, or the reverse proxy in
front of us; set by `bot.web` in the `X-Playbot-Remote-Addr` header it controls) and as
`user_agent` the request's User-Agent (Slack's "Slackbot 1.0 …"). Socket Mode requests have
neither, so both stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.audit import RequestInfo

REMOTE_ADDR_HEADER = "x-playbot-remote-addr"


@dataclass(frozen=True)
class Caller:
    """The Slack user behind a request, the place it came from and the reply handles."""

    slack_user_id: str
    display_name: str | None
    team_id: str | None
    channel_id: str | None
    trigger_id: str | None
    response_url: str | None
    request: RequestInfo
    retry_num: int = 0
    retry_reason: str | None = None

    @property
    def is_retry(self) -> bool:
        return self.retry_num > 0


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


def request_info(headers: Mapping[str, Any]) -> RequestInfo:
    """The audit's ip/user agent from a Bolt request's headers (see the module docstring)."""
    agent = _header(headers, "user-agent")
    return RequestInfo(ip_address=_header(headers, REMOTE_ADDR_HEADER),
                       user_agent=agent[:255] if agent else None)


def caller_from(body: Mapping[str, Any], headers: Mapping[str, Any]) -> Caller:
    """Build the Caller from a slash command, interaction or event body."""
    retry = _header(headers, "x-slack-retry-num")
    common = {
        "request": request_info(headers),
        "retry_num": int(retry) if retry and retry.isdigit() else 0,
        "retry_reason": _header(headers, "x-slack-retry-reason"),
    }
    if "command" in body:  # slash command (form fields)
        return Caller(slack_user_id=body["user_id"], display_name=body.get("user_name"),
                      team_id=body.get("team_id"), channel_id=body.get("channel_id"),
                      trigger_id=body.get("trigger_id"), response_url=body.get("response_url"),
                      **common)
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        return Caller(slack_user_id=event.get("user", ""), display_name=None,
                      team_id=body.get("team_id"), channel_id=event.get("channel"),
                      trigger_id=None, response_url=None, **common)
    user = body.get("user") or {}
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id")
    return Caller(slack_user_id=user.get("id", ""),
                  display_name=user.get("username") or user.get("name"),
                  team_id=(body.get("team") or {}).get("id") or user.get("team_id"),
                  channel_id=channel, trigger_id=body.get("trigger_id"),
                  response_url=body.get("response_url"), **common)
