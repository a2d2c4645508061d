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

Tamper evidence: every row carries `prev_hash` (the previous row's `row_hash`, or 64 zeros for
the first) and `row_hash` = sha256(prev_hash, "\n", `canonical(row)`), computed in the
writing transaction. `record` appends under the lock of the one `audit_chain_head` row:

- it cannot fork: the head row is locked (an UPDATE, which on MariaDB is an exclusive row
  lock held to commit and on SQLite the database's one write lock) BEFORE it is read, and
  read with a locking read (on MariaDB the latest committed version, whatever snapshot the
  transaction's earlier reads made), so two appenders never read the same head; the
  unique index on `prev_hash` would refuse a second successor even if they did.
- the append itself cannot deadlock: the lock is taken last, just before the insert, and
  the insert then needs no lock another appender could hold — the acting user's row, which
  the insert's foreign key check reads with a shared lock, is share-locked BEFORE the head.
  The head stays locked until the caller commits, so audit LAST in a transaction: a
  transaction that, after auditing, writes a row another appender has locked (or audits
  for a second user) can deadlock with that appender; MariaDB then rolls one back — an
  error, never a fork.

`verify` walks the chain and names the first row that breaks it; `export` streams rows for
a SIEM. A root user can still rewrite the whole tail and its head consistently: keep the
head hash `verify` prints (or the exports) somewhere else to compare against.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from db.base import utcnow
from db.models import AuditChainHead, AuditLog, User

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


GENESIS_HASH = "0" * 64
HEAD_ID = 1


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, as far as it is known (every field may be None).

    team_id, enterprise_id, channel_id: the Slack workspace, Enterprise Grid org and channel
    of the request; request_id: one id shared by every audit row one request writes.
    """

    ip_address: str | None = None
    user_agent: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    channel_id: str | None = None
    request_id: str | None = None


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


def redact_unmistakable(text: str, marker: str = REDACTED) -> str:
    """`text` with what is unmistakably a secret replaced by `marker`: private key blocks —
    across lines, with diff markers before each line, or with the newlines escaped (`\\n`)
    as JSON and YAML print them; one without its END line up to the end of the text — and
    Slack, GitHub and AWS tokens and JWTs. Leaves everything else as it is (no guessing on
    entropy), so it suits program output."""
    text = _PRIVATE_KEY_BLOCK.sub(marker, text)
    return _KNOWN_TOKENS.sub(marker, text)


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
    """Append one audit row to the hash chain and flush it (the caller commits).

    user: the acting user, or None for the system (workers, the clock) or an unknown caller.
    outcome: "allowed" or "denied"; stored as `details["outcome"]`.
    The row's `prev_hash`/`row_hash` are set under the chain head's lock (module docstring),
    which the caller's transaction then holds until it ends.
    """
    if outcome not in (ALLOWED, DENIED):
        raise ValueError(f"audit outcome must be 'allowed' or 'denied', not {outcome!r}")
    clean = sanitize(details)
    clean["outcome"] = outcome
    request = request or RequestInfo()
    user_id = _user_id(user)
    row = AuditLog(
        user_id=user_id,
        actor_user_id=user_id,
        action=action[:64],
        resource_type=resource_type[:32],
        resource_id=None if resource_id is None else str(resource_id)[:64],
        details=clean,
        ip_address=_bounded(request.ip_address, 45),
        user_agent=_bounded(request.user_agent, 255),
        team_id=_bounded(request.team_id, 32),
        enterprise_id=_bounded(request.enterprise_id, 32),
        channel_id=_bounded(request.channel_id, 32),
        request_id=_bounded(request.request_id, 64),
        timestamp=utcnow(),
    )
    return append(session, row)


def append(session: Session, row: AuditLog) -> AuditLog:
    """Chain `row` (a new, unsaved AuditLog) onto the trail and flush it; `record` is the
    usual way in. Sets `actor_user_id` from `user_id` when unset and `timestamp` when unset.

    Locks: the acting user's row (shared) and then the chain head, held until the caller's
    transaction ends (see the module docstring for why this cannot fork or deadlock).
    """
    if row.timestamp is None:
        row.timestamp = utcnow()
    if row.actor_user_id is None:
        row.actor_user_id = row.user_id
    user_id = row.user_id
    session.flush()  # the caller's pending writes go first, before the chain lock
    if user_id is not None:
        # The insert's foreign key check share-locks this row on MariaDB: take it now,
        # before the head, so nothing is waited for while the head is held.
        session.execute(select(User.id).where(User.id == user_id).with_for_update(read=True))
    prev_hash = _lock_head(session)
    row.prev_hash = prev_hash
    row.row_hash = chain_hash(prev_hash, canonical(row))
    session.add(row)
    session.flush()
    session.execute(update(AuditChainHead).where(AuditChainHead.id == HEAD_ID)
                    .values(last_id=row.id, last_hash=row.row_hash))
    return row


def _bounded(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _lock_head(session: Session) -> str:
    """Lock the chain head and return the last row's hash (creating the head if missing)."""
    if session.get_bind().dialect.name != "sqlite" and session.execute(
            select(AuditChainHead.id).where(AuditChainHead.id == HEAD_ID)).first() is None:
        _create_head_apart(session)
    locked = session.execute(update(AuditChainHead).where(AuditChainHead.id == HEAD_ID)
                             .values(last_hash=AuditChainHead.last_hash))
    if locked.rowcount == 0:  # type: ignore[attr-defined]
        # SQLite: this transaction holds the database's one write lock, so it can add it.
        session.add(AuditChainHead(id=HEAD_ID, last_id=None, last_hash=GENESIS_HASH))
        session.flush()
    # A locking read: on MariaDB it sees the latest committed head, not the snapshot of a
    # transaction that read before it took the lock (SQLite has one writer at a time).
    head = session.execute(select(AuditChainHead.last_hash)
                           .where(AuditChainHead.id == HEAD_ID)
                           .with_for_update()).scalar_one()
    return head


def _create_head_apart(session: Session) -> None:
    """Migration 0005 makes the head row; a MariaDB database built otherwise (a copied
    schema) gets it here, committed on a connection of its own BEFORE this transaction
    locks anything of the head's table. Creating it inside the transaction instead would
    deadlock two first appenders (each one's gap lock blocks the other's insert)."""
    engine = session.connection().engine
    with engine.begin() as apart:
        apart.execute(insert(AuditChainHead).prefix_with("IGNORE")
                      .values(id=HEAD_ID, last_id=None, last_hash=GENESIS_HASH))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row: AuditLog) -> str:
    """The content of `row` that its hash covers, as one deterministic JSON text (version 1).

    Every column but `id`, `user_id` (nulled when a user is deleted: `actor_user_id` is
    covered instead), `prev_hash` and `row_hash`. Never change it: rows already written
    would stop verifying (add a version instead).
    """
    content = {
        "v": 1,
        "actor_user_id": row.actor_user_id,
        "action": row.action,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "details": row.details,
        "ip_address": row.ip_address,
        "user_agent": row.user_agent,
        "timestamp": _iso(row.timestamp),
        "team_id": row.team_id,
        "enterprise_id": row.enterprise_id,
        "channel_id": row.channel_id,
        "request_id": row.request_id,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def chain_hash(prev_hash: str, content: str) -> str:
    """sha256 hex of the previous row's hash, a newline, and this row's canonical content."""
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: `ok`, rows checked, the first row that breaks the chain (its id,
    or None when the break is at the end) and why, and the hash of the last good row."""

    ok: bool
    rows: int
    last_hash: str
    broken_id: int | None = None
    reason: str | None = None


def verify(session: Session, *, batch: int = 1000) -> ChainReport:
    """Check the whole chain in id order; stop at the first row that breaks it.

    A row breaks it when its `prev_hash` is not the previous row's `row_hash` (a row before
    it was removed, inserted or re-hashed), when its content no longer gives its `row_hash`
    (it was changed), or when its `user_id` is neither its `actor_user_id` nor NULL. The
    chain must end where `audit_chain_head` says (rows at its end were not removed).
    """
    expected = GENESIS_HASH
    previous_id: int | None = None
    count = 0
    # populate_existing: what the database holds now, not rows this session loaded before
    rows = session.scalars(select(AuditLog).order_by(AuditLog.id)
                           .execution_options(yield_per=batch, populate_existing=True))
    for row in rows:
        if row.prev_hash != expected:
            after = f"row {previous_id}'s hash" if previous_id is not None else "the genesis hash"
            return ChainReport(False, count, expected, row.id,
                               f"its prev_hash is not {after}: a row was removed, inserted or "
                               "re-hashed here")
        if chain_hash(row.prev_hash, canonical(row)) != row.row_hash:
            return ChainReport(False, count, expected, row.id,
                               "its content does not match its row_hash: it was changed")
        if row.user_id is not None and row.user_id != row.actor_user_id:
            return ChainReport(False, count, expected, row.id,
                               "its user_id is not the actor its hash covers")
        expected, previous_id = row.row_hash, row.id
        count += 1
    head = session.get(AuditChainHead, HEAD_ID, populate_existing=True)
    if head is not None and (head.last_hash != expected or head.last_id != previous_id):
        return ChainReport(False, count, expected, None,
                           f"the chain ends at row {previous_id} but its head names row "
                           f"{head.last_id}: rows at the end were removed")
    return ChainReport(True, count, expected)


def export_rows(session: Session, since: datetime, until: datetime | None = None, *,
                batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Audit rows with `since <= timestamp < until`, in id order, as JSON-safe mappings for
    a SIEM (one per line: see `playbot audit export`), hashes included so a copy can be
    checked against the chain."""
    query = select(AuditLog, User.username).outerjoin(User, User.id == AuditLog.user_id) \
        .where(AuditLog.timestamp >= since)
    if until is not None:
        query = query.where(AuditLog.timestamp < until)
    for row, username in session.execute(query.order_by(AuditLog.id)
                                         .execution_options(yield_per=batch)):
        details = row.details or {}
        yield {
            "id": row.id, "timestamp": _iso(row.timestamp), "action": row.action,
            "outcome": details.get("outcome"), "resource_type": row.resource_type,
            "resource_id": row.resource_id, "user_id": row.actor_user_id,
            "username": username, "details": details, "ip_address": row.ip_address,
            "user_agent": row.user_agent, "team_id": row.team_id,
            "enterprise_id": row.enterprise_id, "channel_id": row.channel_id,
            "request_id": row.request_id, "prev_hash": row.prev_hash,
            "row_hash": row.row_hash,
        }


def count_rows(session: Session) -> int:
    """How many audit rows there are."""
    return session.scalar(select(func.count()).select_from(AuditLog)) or 0


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
