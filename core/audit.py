"""The audit trail: one `audit_logs` row per decision, allowed or denied, never holding a secret.

`record` writes a row (who, what, on which resource, sanitized details, the request's ip and
user agent) and flushes; the caller's transaction commits it. The outcome ("allowed" or
"denied") is stored in `details["outcome"]`, so every row says what was decided.

Denials: a core function that refuses raises, and the caller rolls its transaction back, so
a denial row written in that transaction would vanish. The caller therefore audits denials
AFTER the rollback, in a fresh transaction, with `denied(...)` (see `core/__init__`).

`sanitize` is applied to every `details` mapping before it is stored: values under
secret-looking keys are replaced by "[REDACTED]", secret-looking values (Slack tokens,
private keys, `password=...` inside text, long random strings, credentials in URLs) are
redacted inside strings, and huge values are truncated.
"""

from __future__ import annotations

import enum
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from db.models import AuditLog, User

REDACTED = "[REDACTED]"
ALLOWED = "allowed"
DENIED = "denied"
Outcome = Literal["allowed", "denied"]

MAX_STRING = 1000  # characters kept of one string value
MAX_ITEMS = 50  # items kept of one list or mapping
MAX_DEPTH = 6  # nesting kept

# Keys whose values are secrets, whatever the value looks like. Matched on the lower-cased
# key with "-", "." and spaces read as "_".
_SECRET_KEY = re.compile(
    r"passw(or)?d|passwd|passphrase|(^|_)pass($|_)|(^|_)pwd($|_)|secret|token|"
    r"api_?key|private_?key|access_?key|signing_?key|secret_?key|credential|"
    r"auth(?!or($|_|s\b))|cookie|session_?id|(^|_)otp($|_)|(^|_)pin($|_)"
)

# Secret-looking fragments inside any string value.
_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
    r"(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|$)",
    re.DOTALL,
)
_KNOWN_TOKENS = re.compile(
    r"\b(?:xox[abposre]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9_-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)
# key=value / key: value pairs inside text whose key looks secret (password=..., "token": "...").
_INLINE_ASSIGNMENT = re.compile(
    r"""(?P<key>(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]{0,40}?(?:passw(?:or)?d|passwd|passphrase|pwd|secret|token|api[_-]?key|"""
    r"""private[_-]?key|access[_-]?key|credential|auth(?!or($|_|s\b))[A-Za-z_]*)["']?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;&"']+)""",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^:/@\s]+:)(?P<pw>[^@\s/]+)@")
_HTTP_AUTH = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_CANDIDATE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, as far as it is known (both may be None)."""

    ip_address: str | None = None
    user_agent: str | None = None


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (password, token, api_key, private_key...)."""
    normalized = re.sub(r"[-. ]", "_", str(key).lower())
    return bool(_SECRET_KEY.search(normalized))


def looks_random(text: str) -> bool:
    """Whether `text` is a long high-entropy string (an API key, a random password...).

    Hex strings (uuids, SHA-256 digests) are not: their entropy stays at or under 4 bits.
    """
    if len(text) < 32:
        return False
    classes = sum(
        1 for test in (str.islower, str.isupper, str.isdigit) if any(test(c) for c in text)
    )
    if classes < 3:
        return False
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    return entropy > 4.2


def contains_plain_secret(text: str) -> bool:
    """Whether `text` holds something that is unmistakably a secret (a Slack, GitHub or AWS
    token, a JWT, a private key block)."""
    return bool(_KNOWN_TOKENS.search(text) or _PRIVATE_KEY_BLOCK.search(text))


def redact_text(text: str) -> str:
    """`text` with every secret-looking fragment replaced by [REDACTED]."""
    text = _PRIVATE_KEY_BLOCK.sub(REDACTED, text)
    text = _KNOWN_TOKENS.sub(REDACTED, text)
    text = _HTTP_AUTH.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _INLINE_ASSIGNMENT.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    return _CANDIDATE.sub(lambda m: REDACTED if looks_random(m.group(0)) else m.group(0), text)


def _truncate(text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    return f"{text[:MAX_STRING]}…[truncated {len(text) - MAX_STRING} chars]"


def _clean(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return _clean(value.value, depth)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return f"[{len(value)} bytes]"
    if isinstance(value, str):
        return _truncate(redact_text(value[: MAX_STRING * 20]))
    if depth >= MAX_DEPTH:
        return "[truncated: nested too deep]"
    if isinstance(value, Mapping):
        return _clean_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        cleaned = [_clean(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            cleaned.append(f"[truncated {len(items) - MAX_ITEMS} items]")
        return cleaned
    return _truncate(redact_text(str(value)[: MAX_STRING * 20]))


def _clean_mapping(details: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for index, (key, value) in enumerate(details.items()):
        if index >= MAX_ITEMS:
            cleaned["_truncated"] = f"{len(details) - MAX_ITEMS} more keys"
            break
        name = _truncate(str(key.value if isinstance(key, enum.Enum) else key))
        if is_secret_key(name) and value not in (None, "", [], {}):
            cleaned[name] = REDACTED
        else:
            cleaned[name] = _clean(value, depth)
    return cleaned


def sanitize(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy of `details` with secrets redacted and huge values truncated.

    Recurses into mappings and lists. Never raises on odd values: they are stringified.
    """
    if not details:
        return {}
    return _clean_mapping(details, 0)


def _user_id(user: User | int | None) -> int | None:
    if user is None or isinstance(user, int):
        return user
    return user.id


def record(
    session: Session,
    *,
    user: User | int | None,
    action: str,
    resource_type: str,
    resource_id: str | int | None,
    details: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
    outcome: Outcome = ALLOWED,
) -> AuditLog:
    """Add one audit row and flush it (the caller commits).

    user: the acting user, or None for the system (workers, the clock) or an unknown caller.
    outcome: "allowed" or "denied"; stored as `details["outcome"]`.
    """
    if outcome not in (ALLOWED, DENIED):
        raise ValueError(f"audit outcome must be 'allowed' or 'denied', not {outcome!r}")
    clean = sanitize(details)
    clean["outcome"] = outcome
    row = AuditLog(
        user_id=_user_id(user),
        action=action[:64],
        resource_type=resource_type[:32],
        resource_id=None if resource_id is None else str(resource_id)[:64],
        details=clean,
        ip_address=(request.ip_address or None)[:45] if request and request.ip_address else None,
        user_agent=(request.user_agent or None)[:255] if request and request.user_agent else None,
    )
    session.add(row)
    session.flush()
    return row


def denied(
    session: Session,
    user: User | int | None,
    action: str,
    resource_type: str,
    resource_id: str | int | None,
    error: BaseException | str,
    request: RequestInfo | None = None,
    *,
    details: Mapping[str, Any] | None = None,
) -> AuditLog:
    """Record a denial (outcome "denied", the user-facing reason in `details["error"]`).

    Call it in a fresh transaction after rolling back the one the refused action ran in.
    """
    merged = {**(details or {}), "error": str(error)}
    return record(session, user=user, action=action, resource_type=resource_type,
                  resource_id=resource_id, details=merged, request=request, outcome=DENIED)
