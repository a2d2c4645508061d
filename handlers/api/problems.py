"""Errors as RFC 9457 problem details: the core's own message, the HTTP status it means.

    {"type": "about:blank", "title": "Forbidden", "status": 403, "code": "NotAllowed",
     "detail": "You need the operator role (or higher) to run playbooks; you are a viewer. ..."}

`detail` is exactly what chat would say (`str(error)`, suggestions included, also listed in
`suggestions`). Nothing internal (tracebacks, SQL) ever reaches a problem: an unexpected
error is logged with a reference and answered as a 500 naming only that reference.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response

from core.errors import (
    InvalidInput,
    InvalidState,
    InvalidVars,
    NotAllowed,
    NotFound,
    PlaybookChanged,
    PlaybotError,
    QueueUnavailable,
    UnknownUser,
)

PROBLEM_JSON = "application/problem+json"


class Unauthorized(PlaybotError):
    """No usable credentials (401)."""


class RateLimited(PlaybotError):
    """Too many requests for this token (429); `retry_after` seconds until the next."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def status_of(error: PlaybotError) -> int:
    """The HTTP status a domain error means."""
    from core.api_tokens import UnknownToken
    from core.log_links import BadLink

    if isinstance(error, Unauthorized | UnknownToken | BadLink):
        return 401
    if isinstance(error, NotAllowed):  # InactiveUser too: the account may not act
        return 403
    if isinstance(error, NotFound | UnknownUser):  # a user named in a filter
        return 404
    if isinstance(error, InvalidState | PlaybookChanged):
        return 409
    if isinstance(error, RateLimited):
        return 429
    if isinstance(error, QueueUnavailable):
        return 503
    if isinstance(error, InvalidVars | InvalidInput):
        return 422
    return 422


def problem(status: int, detail: str, *, code: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """A problem-details response."""
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase,
                            "status": status, "detail": detail}
    if code:
        body["code"] = code
    body.update(extra)
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype=PROBLEM_JSON)
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_error(error: PlaybotError) -> Response:
    """The problem response of a domain error."""
    status = status_of(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="playbot"'
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    extra: dict[str, Any] = {}
    if error.suggestions:
        extra["suggestions"] = list(error.suggestions)
    return problem(status, str(error), code=type(error).__name__, headers=headers, **extra)
