"""Who the console's user can be: Playbot users looked up by name or Slack id, with their role.

`as bob` becomes bob's Slack user id (`U_BOB`); a name Playbot does not know becomes a
brand-new Slack user (`U_DAVE`), whom Playbot meets on first contact like any newcomer.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.slack_requests import Person
from db.models import User

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class Directory:
    """Reads the `users` table for the console (names in mentions, roles in the prompt)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self._names: dict[str, str] = {}

    def person(self, name: str) -> Person:
        """The Person for `name` (a username or a Slack user id); raises ValueError if invalid."""
        name = name.strip().lstrip("@")
        if not NAME.match(name):
            raise ValueError(f"{name!r} is not a user name (letters, digits, . _ -)")
        with self.session_factory() as session:
            user = session.scalar(select(User).where(
                (func.lower(User.username) == name.lower()) | (User.slack_user_id == name)))
            if user is not None and user.slack_user_id:
                return Person(user.username, user.slack_user_id)
            if user is not None:  # a user made by the CLI without a Slack id
                return Person(user.username, slack_id_for(user.username))
        if name.upper().startswith("U") and name.upper() == name and len(name) > 2:
            return Person(name.lower(), name)
        return Person(name.lower(), slack_id_for(name))

    def role(self, person: Person) -> str:
        """"admin", "operator", "viewer", "inactive", or "new" (not a Playbot user yet)."""
        with self.session_factory() as session:
            user = session.scalar(select(User).where(User.slack_user_id == person.slack_id))
            if user is None:
                return "new"
            if not user.is_active:
                return "inactive"
            return user.role.value

    def name_of(self, slack_id: str) -> str:
        """The username behind a Slack user id (for `<@U…>` mentions); the id if unknown."""
        cached = self._names.get(slack_id)
        if cached is not None:
            return cached
        with self.session_factory() as session:
            username = session.scalar(select(User.username).where(
                User.slack_user_id == slack_id))
        if username:
            self._names[slack_id] = username
            return username
        return slack_id

    def usernames(self) -> list[str]:
        with self.session_factory() as session:
            return list(session.scalars(select(User.username).where(User.is_active.is_(True))
                                        .order_by(User.username)))


def slack_id_for(username: str) -> str:
    """The console's Slack user id for a username: alice → U_ALICE."""
    return "U_" + re.sub(r"[^A-Z0-9]", "_", username.upper())
