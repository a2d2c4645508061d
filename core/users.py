"""Playbot's people: adding users, their roles, deactivating and reactivating them.

Slack users who write to the bot are provisioned as viewers by `core.identity`; here an
operator (the `playbot users` CLI) adds people up front, promotes them and turns them off.
Every change writes an audit row in the caller's transaction (`actor` None: the CLI or the
system; `origin` is merged into the row's details, e.g. `{"via": "cli", "os_user": "root"}`).
Functions flush, never commit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.audit import RequestInfo
from core.errors import InvalidInput, UnknownUser
from core.suggestions import closest
from db.models import Role, User

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
USERNAME_RULE = "letters, digits, `.`, `_` and `-`, starting with a letter or digit, at most 64 characters"
# Member ids start with U (W on Enterprise Grid); the other prefixes name other kinds of ids.
SLACK_ID_PATTERN = re.compile(r"^[UW][A-Z0-9_]{3,31}$")
OTHER_SLACK_IDS = {"C": "a channel id", "G": "a private channel id", "D": "a DM id",
                   "T": "a workspace (team) id", "E": "an enterprise id", "B": "a bot id",
                   "A": "an app id"}
SLACK_ID_HELP = ("Slack user ids look like U0123ABCD: in Slack open the person's profile, "
                 "⋮ (More) → Copy member ID.")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ROLES = tuple(r.value for r in Role)


def parse_role(value: str | Role) -> Role:
    """`"operator"` (any case) → Role.operator; InvalidInput naming the roles otherwise."""
    if isinstance(value, Role):
        return value
    text = str(value or "").strip().lower()
    try:
        return Role(text)
    except ValueError:
        raise InvalidInput(f"Unknown role `{value}`: use one of {', '.join(ROLES)}.",
                           suggestions=closest(text, ROLES)) from None


def add_user(
    session: Session,
    username: str,
    *,
    slack_user_id: str,
    role: str | Role,
    email: str | None = None,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> User:
    """Create an active user. Raises InvalidInput for a malformed username, Slack id, email or
    role, or when the username, Slack id or email already belongs to someone (naming them)."""
    username = _check_username(username)
    slack_user_id = _check_slack_id(slack_user_id)
    parsed_role = parse_role(role)
    email = _check_email(email)
    problems: list[str] = []
    same_name = _by_username(session, username)
    if same_name is not None:
        problems.append(f"A user named `{same_name.username}` already exists "
                        f"({_describe(same_name)}).")
    same_slack = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
    if same_slack is not None:
        hint = (f" To change their role: `playbot users set-role {same_slack.username} "
                f"{parsed_role.value}`." if same_slack.role != parsed_role else "")
        problems.append(f"Slack id {slack_user_id} already belongs to `{same_slack.username}` "
                        f"({_describe(same_slack)}).{hint}")
    if email:
        same_email = session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if same_email is not None:
            problems.append(f"Email {email} already belongs to `{same_email.username}`.")
    if problems:
        raise InvalidInput(" ".join(problems))
    user = User(username=username, slack_user_id=slack_user_id, role=parsed_role, email=email,
                is_active=True)
    session.add(user)
    session.flush()
    _audit(session, actor, "user.add", user, origin, request,
           {"role": parsed_role.value, "slack_user_id": slack_user_id, "email": email})
    return user


def get_user(session: Session, username: str) -> User:
    """The user called `username` (case-insensitive), active or not.

    Raises UnknownUser with the closest usernames."""
    name = (username or "").strip()
    user = _by_username(session, name) if name else None
    if user is None:
        names = list(session.scalars(select(User.username)))
        raise UnknownUser(f"No user named `{name or username}`.", suggestions=closest(name, names))
    return user


def list_users(
    session: Session, *, role: str | Role | None = None, active_only: bool = False
) -> list[User]:
    """Users by username; optionally only one role, or only active ones."""
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == parse_role(role))
    if active_only:
        query = query.where(User.is_active.is_(True))
    return list(session.scalars(query))


def set_role(
    session: Session,
    username: str,
    role: str | Role,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> User:
    """Give `username` the role `role`. No change (and no audit row) when they already have it.

    Raises UnknownUser, or InvalidInput for an unknown role."""
    new_role = parse_role(role)
    user = get_user(session, username)
    if user.role == new_role:
        return user
    before = user.role
    user.role = new_role
    session.flush()
    _audit(session, actor, "user.set_role", user, origin, request,
           {"from": before.value, "to": new_role.value})
    return user


def deactivate_user(
    session: Session,
    username: str,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> User:
    """Turn `username` off: Playbot refuses them from now on (their history stays).
    No change when already inactive. Raises UnknownUser."""
    return _set_active(session, username, False, actor, origin, request)


def activate_user(
    session: Session,
    username: str,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
) -> User:
    """Turn a deactivated user back on. No change when already active. Raises UnknownUser."""
    return _set_active(session, username, True, actor, origin, request)


def _set_active(session: Session, username: str, active: bool, actor: User | None,
                origin: Mapping[str, Any] | None, request: RequestInfo | None) -> User:
    user = get_user(session, username)
    if user.is_active == active:
        return user
    user.is_active = active
    session.flush()
    _audit(session, actor, "user.activate" if active else "user.deactivate", user, origin,
           request, {"role": user.role.value})
    return user


def _by_username(session: Session, username: str) -> User | None:
    exact = session.scalar(select(User).where(User.username == username))
    if exact is not None:
        return exact
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def _describe(user: User) -> str:
    return f"{user.role.value}{'' if user.is_active else ', deactivated'}"


def _check_username(username: str) -> str:
    name = (username or "").strip()
    if not USERNAME_PATTERN.match(name):
        raise InvalidInput(f"Invalid username `{name}`: use {USERNAME_RULE}.")
    return name


def _check_slack_id(slack_user_id: str) -> str:
    text = (slack_user_id or "").strip()
    if not text:
        raise InvalidInput(f"A Slack user id is required. {SLACK_ID_HELP}")
    if not SLACK_ID_PATTERN.match(text):
        hint = f" Did you mean {text.upper()}?" if SLACK_ID_PATTERN.match(text.upper()) else ""
        other = OTHER_SLACK_IDS.get(text[:1].upper())
        if not hint and other and re.fullmatch(r"[A-Z0-9]{4,32}", text.upper()):
            hint = f" `{text}` looks like {other}, not a person's member id."
        raise InvalidInput(f"Invalid Slack user id `{text}`.{hint} {SLACK_ID_HELP}")
    return text


def _check_email(email: str | None) -> str | None:
    text = (email or "").strip()
    if not text:
        return None
    if len(text) > 255 or not EMAIL_PATTERN.match(text):
        raise InvalidInput(f"Invalid email address `{text}`.")
    return text


def _audit(session: Session, actor: User | None, action: str, user: User,
           origin: Mapping[str, Any] | None, request: RequestInfo | None,
           details: Mapping[str, Any]) -> None:
    audit.record(session, user=actor, action=action, resource_type="user",
                 resource_id=user.username, details={**(origin or {}), **details},
                 request=request)


def find_user(session: Session, *, slack_user_id: str | None = None,
              name: str | None = None) -> User:
    """The user with this Slack id, else this username (any case); UnknownUser naming the
    closest usernames."""
    if slack_user_id:
        user = session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        if user is not None:
            return user
    if name:
        user = session.scalar(select(User).where(func.lower(User.username) == name.lower()))
        if user is not None:
            return user
    shown = f"<@{slack_user_id}>" if slack_user_id and not name else f"@{name}"
    names = list(session.scalars(select(User.username)))
    raise UnknownUser(f"I don't know the user {shown}.",
                      suggestions=[f"@{n}" for n in closest(name or "", names)])
