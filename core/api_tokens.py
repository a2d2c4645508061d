"""Personal API tokens: made for a user, shown once, stored only as a hash, revoked at will.

Guarantees:
- a token is `pbt_` + 43 characters of `secrets.token_urlsafe` (256 random bits); only its
  SHA-256 is stored, so neither the database nor a backup can give it back. A random
  256-bit secret needs no slow hash: nobody can guess one to compare against the hash.
- `authenticate` answers the same for every way a token can be unusable (unknown, revoked,
  expired) — `UnknownToken`, nothing telling which — and `InactiveUser` when its user is
  deactivated: a deactivated user's tokens stop working at once, and work again only if
  the user is reactivated (revoke them to be sure they never will).
- a token acts as its user, with the user's role at the time of each call (a role change
  applies to the next request).
- making and revoking a token are audited (`token.create`, `token.revoke`) with its name
  and prefix (details `name`, `prefix`), never the token.

Nothing here commits; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit, permissions
from core.audit import RequestInfo
from core.errors import InactiveUser, InvalidInput, NotFound, PlaybotError
from db.base import utcnow
from db.models import ApiToken, User

TOKEN_PREFIX = "pbt_"
SHOWN_PREFIX = 10  # characters of the token kept to name it ("pbt_AbCd12")
MAX_TOKENS_PER_USER = 20
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d{1,5})\s*([dhwm]?)\s*$")
LAST_USED_PRECISION = timedelta(minutes=1)  # last_used_at is written at most this often


class UnknownToken(PlaybotError):
    """No usable token: unknown, revoked or expired (deliberately not saying which)."""


class UnknownTokenName(NotFound):
    """A user has no token of that name or prefix (revoking)."""


@dataclass(frozen=True)
class NewToken:
    """A token just made: `secret` is the only copy of the token there will ever be."""

    token: ApiToken
    secret: str


def hash_token(secret: str) -> str:
    """The SHA-256 hex stored for a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_expiry(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """When a token given `--expires TEXT` expires: `30d`, `12h`, `2w`, `90` (days), a date
    `2027-01-31` (midnight UTC) or `never`/empty for no expiry. Raises InvalidInput."""
    value = (text or "").strip().lower()
    if value in ("", "never", "none"):
        return None
    now = now or utcnow()
    match = _DURATION.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2) or "d"
        if amount < 1:
            raise InvalidInput("A token's lifetime must be at least 1.")
        delta = {"h": timedelta(hours=amount), "d": timedelta(days=amount),
                 "w": timedelta(weeks=amount), "m": timedelta(days=30 * amount)}[unit]
        return now + delta
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"`{text}` is not an expiry: give a duration like `30d`, `12h`, "
                           "`2w`, a date like `2027-01-31`, or `never`.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    if moment <= now:
        raise InvalidInput(f"`{text}` is in the past; a token must expire in the future.")
    return moment


def create(session: Session, user: User, *, name: str | None = None,
           expires_at: datetime | None = None, actor: User | None = None,
           origin: dict[str, str] | None = None, request: RequestInfo | None = None
           ) -> NewToken:
    """Make a token for `user` (active). `name` defaults to `token-N`. Audited.

    Raises InvalidInput (bad or duplicate name, too many tokens, expiry in the past),
    InactiveUser.
    """
    if not user.is_active:
        raise InactiveUser(permissions.inactive_message(user))
    live = active_tokens(session, user)
    if len(live) >= MAX_TOKENS_PER_USER:
        raise InvalidInput(f"{user.username} already has {len(live)} tokens, the most allowed; "
                           "revoke one first.")
    wanted = (name or "").strip() or _free_name(live)
    if not NAME_PATTERN.match(wanted):
        raise InvalidInput(f"`{wanted}` is not a token name: use up to 64 letters, digits, "
                           "`-`, `_`, `.` or `:`, starting with a letter or digit.")
    if any(t.name == wanted for t in live):
        raise InvalidInput(f"{user.username} already has a token named `{wanted}`; choose "
                           "another name or revoke that one.")
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("A token must expire in the future.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=wanted, prefix=secret[:SHOWN_PREFIX],
                     token_hash=hash_token(secret), created_at=now, expires_at=expires_at)
    session.add(token)
    session.flush()
    audit.record(session, user=actor, action="token.create", resource_type="user",
                 resource_id=user.username, request=request,
                 details={**(origin or {}), "name": token.name, "prefix": token.prefix,
                          "expires_at": expires_at.isoformat() if expires_at else None})
    return NewToken(token=token, secret=secret)


def active_tokens(session: Session, user: User) -> list[ApiToken]:
    """The user's tokens that are not revoked (expired ones included), oldest first."""
    return list(session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.id)).unique())


def list_tokens(session: Session, user: User, *, include_revoked: bool = False
                ) -> list[ApiToken]:
    """The user's tokens, oldest first."""
    if not include_revoked:
        return active_tokens(session, user)
    return list(session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)).unique())


def revoke(session: Session, user: User, ref: str, *, actor: User | None = None,
           origin: dict[str, str] | None = None, request: RequestInfo | None = None
           ) -> ApiToken:
    """Revoke the user's token named `ref` (its name, or its prefix as lists show it).
    It stops working at once. Audited. Raises UnknownTokenName."""
    wanted = (ref or "").strip()
    if not wanted:
        raise InvalidInput("Which token? Give its name or prefix (`playbot tokens list`).")
    live = active_tokens(session, user)
    match = [t for t in live if t.name == wanted] or [
        t for t in live if len(wanted) >= 6 and t.prefix.startswith(wanted)]
    if len(match) != 1:
        names = ", ".join(f"`{t.name}` ({t.prefix}…)" for t in live) or "none"
        raise UnknownTokenName(f"{user.username} has no token `{wanted}`" + (
            " (several match; give its name)" if len(match) > 1 else "")
            + f". Their tokens: {names}.")
    token = match[0]
    now = utcnow()
    session.execute(update(ApiToken).where(ApiToken.id == token.id,
                                           ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now).execution_options(synchronize_session=False))
    token.revoked_at = now
    audit.record(session, user=actor, action="token.revoke", resource_type="user",
                 resource_id=user.username, request=request,
                 details={**(origin or {}), "name": token.name, "prefix": token.prefix})
    return token


def authenticate(session: Session, secret: str | None, *, now: datetime | None = None
                 ) -> tuple[ApiToken, User]:
    """The token and its user for the `Authorization: Bearer` value `secret`.

    One lookup of the unique `token_hash` index. Raises UnknownToken (missing, malformed,
    unknown, revoked or expired) or InactiveUser (its user is deactivated).
    """
    value = (secret or "").strip()
    if not value.startswith(TOKEN_PREFIX) or len(value) > 200:
        raise UnknownToken(_UNKNOWN)
    digest = hash_token(value)
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    now = now or utcnow()
    if (token is None or not hmac.compare_digest(token.token_hash, digest)
            or token.revoked_at is not None
            or (token.expires_at is not None and token.expires_at <= now)):
        raise UnknownToken(_UNKNOWN)
    user = token.user
    if not user.is_active:
        raise InactiveUser(permissions.inactive_message(user))
    return token, user


def touch(session: Session, token: ApiToken, *, now: datetime | None = None) -> None:
    """Record that the token was used (at most once a minute, to keep polling cheap)."""
    now = now or utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_PRECISION:
        return
    session.execute(update(ApiToken).where(ApiToken.id == token.id)
                    .values(last_used_at=now).execution_options(synchronize_session=False))


def describe(token: ApiToken, *, now: datetime | None = None) -> dict[str, object]:
    """A token as lists show it (never its secret)."""
    now = now or utcnow()
    state = ("revoked" if token.revoked_at is not None else
             "expired" if token.expires_at is not None and token.expires_at <= now else "active")
    return {"name": token.name, "prefix": token.prefix, "state": state,
            "created_at": _iso(token.created_at), "expires_at": _iso(token.expires_at),
            "last_used_at": _iso(token.last_used_at), "revoked_at": _iso(token.revoked_at)}


_UNKNOWN = ("This API token is not valid: it is unknown, revoked or expired. Make a new one "
            "with `playbot tokens add USER`.")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _free_name(live: list[ApiToken]) -> str:
    taken = {t.name for t in live}
    n = len(live) + 1
    while f"token-{n}" in taken:
        n += 1
    return f"token-{n}"
