"""Who sent a Slack request and from where: one `Caller` for commands, actions, views and events.

Slack's requests carry no end-user IP: the request comes from Slack's servers. What the audit
records as `ip_address` is the HTTP peer the web server saw (Slack, or the reverse proxy in
front of us; set by `bot.web` in the `X-Playbot-Remote-Addr` header it controls) and as
`user_agent` the request's User-Agent (Slack's "Slackbot 1.0 …"). Socket Mode requests have
neither, so both stay empty.

The rest of `RequestInfo` goes into every audit row the request writes: the Slack workspace
(`team_id`), Enterprise Grid organisation (`enterprise_id`) and channel of the request, and a
`request_id` made fresh for each request Slack delivers, which ties together all the rows that
one request writes (its decision, the jobs it created, a denial after a rollback).

`Caller.origin` is what the identity check (`core.identity.check_origin`) reads: the
request's workspace and organisation, and the acting user's own workspace — `user.team_id`
of an interaction, `user_team` of an event — which is another organisation's for a Slack
Connect user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.audit import RequestInfo
from core.identity import Origin

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
    enterprise_id: str | None = None
    user_team_id: str | None = None

    @property
    def is_retry(self) -> bool:
        return self.retry_num > 0

    @property
    def origin(self) -> Origin:
        """Where the request comes from, for `core.identity.check_origin`."""
        return Origin(team_id=self.team_id, enterprise_id=self.enterprise_id,
                      user_team_id=self.user_team_id)


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


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _enterprise_of(body: Mapping[str, Any]) -> str | None:
    enterprise = body.get("enterprise")
    if isinstance(enterprise, Mapping):
        return _text(enterprise.get("id"))
    if isinstance(enterprise, str):
        return _text(enterprise)
    team = body.get("team")
    if isinstance(team, Mapping) and team.get("enterprise_id"):
        return _text(team.get("enterprise_id"))
    return _text(body.get("enterprise_id"))


def caller_from(body: Mapping[str, Any], headers: Mapping[str, Any]) -> Caller:
    """Build the Caller from a slash command, interaction or event body."""
    retry = _header(headers, "x-slack-retry-num")
    common = {
        "retry_num": int(retry) if retry and retry.isdigit() else 0,
        "retry_reason": _header(headers, "x-slack-retry-reason"),
        "enterprise_id": _enterprise_of(body),
    }
    if "command" in body:  # slash command (form fields)
        caller = Caller(slack_user_id=body["user_id"], display_name=body.get("user_name"),
                        team_id=_text(body.get("team_id")), channel_id=body.get("channel_id"),
                        trigger_id=body.get("trigger_id"),
                        response_url=body.get("response_url"), request=RequestInfo(),
                        **common)
    elif body.get("type") == "event_callback":
        event = body.get("event") or {}
        user_team = _text(event.get("user_team"))
        caller = Caller(slack_user_id=event.get("user", ""), display_name=None,
                        team_id=_text(body.get("team_id")), channel_id=event.get("channel"),
                        trigger_id=None, response_url=None, request=RequestInfo(),
                        user_team_id=user_team if user_team and user_team[:1] == "T" else None,
                        **common)
    else:
        user = body.get("user") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id")
        team = body.get("team")
        team_id = (team.get("id") if isinstance(team, Mapping) else _text(team)) or None
        caller = Caller(slack_user_id=user.get("id", ""),
                        display_name=user.get("username") or user.get("name"),
                        team_id=_text(team_id) or _text(user.get("team_id")),
                        channel_id=channel, trigger_id=body.get("trigger_id"),
                        response_url=body.get("response_url"), request=RequestInfo(),
                        user_team_id=_text(user.get("team_id")), **common)
    info = request_info(headers)
    return replace(caller, request=replace(
        info, team_id=caller.team_id, enterprise_id=caller.enterprise_id,
        channel_id=_text(caller.channel_id), request_id=uuid.uuid4().hex))
