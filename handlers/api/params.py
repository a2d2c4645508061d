"""Reading query parameters and JSON bodies, refusing bad ones with InvalidInput (422)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request

from core.errors import InvalidInput
from db.base import utcnow
from db.models import JobStatus

_AGO = re.compile(r"^(\d{1,5})([mhdw])$")


def body() -> dict[str, Any]:
    """The request's JSON object body."""
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object, e.g. "
                           '{"playbook": "ping", "target": "web-01"}.')
    return data


def integer(name: str, default: int, *, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().lstrip("-").isdigit():
        raise InvalidInput(f"`{name}` must be a whole number, not `{raw[:40]}`.")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(f"`{name}` must be between {low} and {high}, not {value}.")
    return value


def statuses(raw: str | None) -> list[JobStatus]:
    """`status=failed` or `status=running,pending`."""
    if not raw:
        return []
    found = []
    for word in (w.strip().lower() for w in raw.split(",") if w.strip()):
        try:
            found.append(JobStatus(word))
        except ValueError:
            names = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(f"`{word[:40]}` is not a job status; use one of {names}."
                               ) from None
    return found


def since(raw: str | None) -> datetime | None:
    """`since=2026-12-01T00:00:00Z` or `since=24h` (also `30m`, `7d`, `2w`)."""
    if not raw:
        return None
    text = raw.strip()
    match = _AGO.match(text.lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return utcnow() - {"m": timedelta(minutes=amount), "h": timedelta(hours=amount),
                           "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"`since` must be a time like 2026-12-01T00:00:00Z or a span like "
                           f"24h, not `{text[:40]}`.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(created_at: datetime, pk: int) -> str:
    raw = json.dumps([created_at.isoformat(), pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        created, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(created)
        if not isinstance(pk, int):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInput("`cursor` is not one this API gave out; pass `next_cursor` of the "
                           "previous page as it is.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), pk
