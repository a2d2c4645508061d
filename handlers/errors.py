"""The one place unexpected errors end up: logged with their traceback, counted, and the user
told something useful (with a reference to find the log line).

Bolt calls `make_global_error_handler(deps)`'s function for errors raised before the ack;
the background half of each listener (`handlers.listeners`) reports through
`log_unexpected` for errors raised after it. Expected problems — a `core.errors`
PlaybotError (denied, unknown name, bad value) — never get here: the listeners answer those
with the error's own message.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from sqlalchemy.exc import DBAPIError

from handlers.deps import Deps

log = logging.getLogger("playbot.handlers")


def unexpected_message(ref: str, error: BaseException | None = None) -> str:
    if error is not None and database_unreachable(error):
        return (f":warning: Playbot cannot reach its database right now (reference `{ref}`), "
                "so what you asked was not done. Try again in a minute; `/jobs mine` shows your "
                "jobs once it is back. If it lasts, tell an admin: the database is down.")
    return (f":warning: Something went wrong inside Playbot (reference `{ref}`). Whatever had "
            "already completed is kept — `/jobs mine` shows your jobs. Try again in a moment; "
            "if it keeps happening, give an admin this reference.")


# MySQL client errors for a server that is down or went away: can't connect (2002 socket,
# 2003 TCP), server has gone away (2006), lost connection during a query (2013).
_UNREACHABLE_CODES = frozenset({2002, 2003, 2006, 2013})


def database_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached (down, restarting, gone away),
    rather than something wrong in Playbot."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    args = getattr(error.orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    return code in _UNREACHABLE_CODES or "unable to open database file" in str(error.orig)


def new_reference() -> str:
    return uuid.uuid4().hex[:10]


def log_unexpected(error: BaseException, *, where: str, body: Mapping[str, Any] | None,
                   deps: Deps) -> str:
    """Log `error` with its traceback and a fresh reference; count it. Returns the reference."""
    ref = new_reference()
    log.error("unexpected error ref=%s where=%s request=%s", ref, where, describe(body),
              exc_info=(type(error), error, error.__traceback__))
    deps.observer.error(where)
    return ref


def describe(body: Mapping[str, Any] | None) -> str:
    """A short, secret-free description of a Slack request for log lines."""
    if not body:
        return "-"
    if "command" in body:
        return f"command {body.get('command')} by {body.get('user_id')}"
    kind = body.get("type")
    user = (body.get("user") or {}).get("id")
    if kind == "block_actions":
        action = ((body.get("actions") or [{}])[0]).get("action_id")
        return f"action {action} by {user}"
    if kind in ("view_submission", "view_closed"):
        return f"{kind} {(body.get('view') or {}).get('callback_id')} by {user}"
    if kind == "event_callback":
        event = body.get("event") or {}
        return f"event {event.get('type')} by {event.get('user')}"
    return str(kind)


def make_global_error_handler(deps: Deps) -> Callable[..., BoltResponse]:
    """Bolt's global error handler: log, count, and answer the user inside the ack itself."""

    def global_error_handler(error: Exception, body: dict[str, Any],
                             request: BoltRequest) -> BoltResponse:
        ref = log_unexpected(error, where="ack", body=body, deps=deps)
        message = unexpected_message(ref, error)
        if "command" in (body or {}):
            return BoltResponse(status=200, body=json.dumps(
                {"response_type": "ephemeral", "text": message}),
                headers={"content-type": "application/json"})
        if (body or {}).get("type") == "view_submission":
            state = ((body.get("view") or {}).get("state") or {}).get("values") or {}
            first_block = next(iter(state), None)
            if first_block:
                return BoltResponse(status=200, body=json.dumps(
                    {"response_action": "errors", "errors": {first_block: message[:150]}}),
                    headers={"content-type": "application/json"})
        return BoltResponse(status=200, body="")

    return global_error_handler
