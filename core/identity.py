"""Who is asking: a Slack user id resolved to a `users` row, provisioned on first contact.

A known Slack user gets their row (refused with `InactiveUser` if deactivated). An unknown
one is created as a `viewer` when auto-provisioning is on, else refused with `UnknownUser`
telling them to ask an admin. Two first requests of one new user may arrive at once (Slack
retries, two clicks): the insert runs in a savepoint, and the loser of the race takes the
winner's row instead of failing (`db.session.savepoint`, which keeps the new row inside the
caller's transaction on SQLite too). The caller decides what a refused first request
keeps: the Slack handlers audit the refusal in a fresh transaction that provisions the
account again (`handlers.chat.record_refusal`), so an admin can find and promote them.

Which organisation may ask: Playbot serves one Slack install — a workspace (`team_id`),
or an Enterprise Grid organisation (`enterprise_id`), configured or learned from the bot
token (`Install`). `check_origin` refuses, with `ForeignWorkspace`, a request whose team or
enterprise is not the install's, and a Slack Connect user — someone whose own team is not
the install's, acting in a channel shared with another organisation. `resolve_slack_user`
checks the origin BEFORE it looks anyone up, so such a request is never provisioned and
never acts as a local account.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import ForeignWorkspace, InactiveUser, UnknownUser
from core.permissions import inactive_message
from db.base import utcnow
from db.models import Role, User
from db.session import savepoint

USERNAME_MAX = 64
# last_login is refreshed at most this often, so read-only commands do not write every time.
LAST_LOGIN_RESOLUTION = timedelta(seconds=60)
_PROVISION_ATTEMPTS = 6


@dataclass(frozen=True)
class Install:
    """The Slack organisation Playbot serves: a workspace (`team_id`) and, on Enterprise
    Grid, its organisation (`enterprise_id`). An org-wide install has only `enterprise_id`:
    any workspace of that organisation may ask. Both None: nothing is checked (no Slack)."""

    team_id: str | None = None
    enterprise_id: str | None = None

    @property
    def known(self) -> bool:
        return bool(self.team_id or self.enterprise_id)


@dataclass(frozen=True)
class Origin:
    """Where a request says it comes from: the workspace and Grid organisation it was made
    in, and the acting user's own workspace (which differs from `team_id` for a Slack
    Connect user from another organisation)."""

    team_id: str | None = None
    enterprise_id: str | None = None
    user_team_id: str | None = None


FOREIGN_MESSAGE = ("Playbot only works for members of the workspace it is installed in, "
                   "and this request comes from {what}. Ask someone in that workspace to "
                   "run it, or ask its admins to add you there.")


def check_origin(install: Install | None, origin: Origin) -> None:
    """Refuse (ForeignWorkspace) a request from outside the install.

    With the install's workspace known, the request's workspace and the acting user's own
    workspace must both be it; with its Grid organisation known, the request's organisation
    must be it. Checked fields that the request does not carry are a refusal too: Slack
    always sends them, so a request without them cannot be placed.
    """
    if install is None or not install.known:
        return
    if install.enterprise_id and origin.enterprise_id != install.enterprise_id:
        raise ForeignWorkspace(FOREIGN_MESSAGE.format(what="another Slack organisation"))
    if install.team_id:
        if origin.team_id != install.team_id:
            raise ForeignWorkspace(FOREIGN_MESSAGE.format(what="another Slack workspace"))
        if origin.user_team_id and origin.user_team_id != install.team_id:
            raise ForeignWorkspace(FOREIGN_MESSAGE.format(
                what="a user of another organisation (a Slack Connect channel)"))


def resolve_slack_user(
    session: Session,
    slack_user_id: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    auto_provision: bool = True,
    install: Install | None = None,
    origin: Origin | None = None,
) -> User:
    """The `users` row of a Slack user, provisioned as viewer on first contact if allowed.

    install, origin: when given, the request must come from the install (`check_origin`),
    checked before any row is read or created.
    Raises ForeignWorkspace for a request from outside the install, InactiveUser for a
    deactivated account, UnknownUser when the user is unknown and auto-provisioning is off
    (or the Slack id is missing). Updates `last_login`.
    """
    if install is not None:
        check_origin(install, origin or Origin())
    slack_user_id = (slack_user_id or "").strip()
    if not slack_user_id:
        raise UnknownUser("Playbot could not tell who sent this request (no Slack user id).")
    user = _by_slack_id(session, slack_user_id)
    if user is None:
        if not auto_provision:
            raise UnknownUser(
                f"You are not a Playbot user yet. Ask an admin to add you: "
                f"`playbot users add <username> --slack-id {slack_user_id} --role viewer`."
            )
        user = _provision(session, slack_user_id, display_name, email)
    if not user.is_active:
        raise InactiveUser(inactive_message(user))
    now = utcnow()
    if user.last_login is None or now - user.last_login >= LAST_LOGIN_RESOLUTION:
        user.last_login = now
        session.flush()
    return user


def _by_slack_id(session: Session, slack_user_id: str, *, locking: bool = False) -> User | None:
    """The user with this Slack id. `locking` reads the latest committed row (a shared-lock
    read) instead of the transaction's snapshot, which on MariaDB's REPEATABLE READ would
    not show a row a concurrent transaction just committed."""
    query = select(User).where(User.slack_user_id == slack_user_id)
    if locking:
        query = query.with_for_update(read=True)
    return session.scalar(query)


def username_from(display_name: str | None, slack_user_id: str) -> str:
    """A username from a Slack display name: lower-case ascii letters, digits, `.`, `_`, `-`.

    Falls back to the Slack id when nothing usable is left.
    """
    text = unicodedata.normalize("NFKD", display_name or "").encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    text = re.sub(r"-{2,}", "-", text)
    return (text or slack_user_id.lower())[: USERNAME_MAX - 16]


def _candidates(base: str, slack_user_id: str) -> list[str]:
    names = [base, f"{base}-{slack_user_id.lower()}"[:USERNAME_MAX]]
    names += [f"{base}-{n}" for n in range(2, _PROVISION_ATTEMPTS + 2)]
    return list(dict.fromkeys(names))


def _provision(session: Session, slack_user_id: str, display_name: str | None,
               email: str | None) -> User:
    base = username_from(display_name, slack_user_id)
    taken = set(session.scalars(select(User.username).where(User.username.in_(
        _candidates(base, slack_user_id)))))
    email = (email or "").strip() or None
    if email and session.scalar(select(User.id).where(User.email == email)) is not None:
        email = None  # never link to another account by email; an admin can merge by hand
    for username in _candidates(base, slack_user_id):
        if username in taken:
            continue
        user = User(username=username, slack_user_id=slack_user_id, email=email,
                    role=Role.viewer, is_active=True)
        try:
            with savepoint(session):
                session.add(user)
                session.flush()
        except IntegrityError:
            # Someone else inserted first: the same Slack user (take that row) or a user
            # with this username or email (try the next name, without the email).
            winner = _by_slack_id(session, slack_user_id, locking=True)
            if winner is not None:
                return winner
            taken.add(username)
            email = None
            continue
        return user
    raise UnknownUser(
        f"Playbot could not create an account for you automatically. Ask an admin to add "
        f"you: `playbot users add <username> --slack-id {slack_user_id} --role viewer`."
    )
