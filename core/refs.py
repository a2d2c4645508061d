"""Finding a job or ticket from what a user typed: its uuid, a unique uuid prefix, or its id.

One rule for every id argument (`/job`, `/cancel-job`, ticket commands, buttons' values):

- `#12` is always the primary key 12, never a uuid prefix;
- text with a letter or a dash (`3f2a9c1e`, a full uuid) is always a uuid or a prefix of one
  (at least 6 characters), never a primary key;
- a bare number (`12`, `12345678`) may be either: when it names one row both ways it is
  refused as ambiguous (the user is asked for `#12` or more characters) — a number is
  never silently a primary key while it is also a uuid prefix, nor the other way round.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import InvalidInput, NotFound

MIN_PREFIX = 6
MAX_ID_DIGITS = 18  # a BIGINT primary key; longer digit strings can only be uuid prefixes
_HEX_PREFIX = re.compile(r"^[0-9a-f-]+$")
T = TypeVar("T")


def find(session: Session, model: type[T], uuid_column: InstrumentedAttribute[Any], ref: str | int,
         *, what: str, not_found: type[NotFound]) -> T:
    """The row of `model` that `ref` names, by the rule of the module docstring.

    ref: `#12` (the id), a full uuid or a unique prefix of at least 6 characters, or a bare
    number that is the one or the other. Raises `not_found` when nothing matches,
    InvalidInput for an ambiguous or too short reference.
    """
    typed = str(ref).strip()
    text = typed.lower()
    explicit_id = text.startswith("#")
    text = text.lstrip("#").strip()
    if not text:
        raise InvalidInput(f"Which {what}? Give its id.")
    if explicit_id:
        if not text.isdigit() or len(text) > MAX_ID_DIGITS:
            raise not_found(f"No {what} `{typed}`: `#` goes before a number, like `#12`.")
        row = session.get(model, int(text))
        if row is None:
            raise not_found(f"No {what} `{typed}`.")
        return row
    if not _HEX_PREFIX.match(text):
        raise not_found(f"No {what} `{typed}`: a {what} id looks like `3f2a9c1e`.")
    by_id = session.get(model, int(text)) if text.isdigit() and len(text) <= MAX_ID_DIGITS \
        else None
    if len(text) < MIN_PREFIX:
        if by_id is not None:
            return by_id
        if text.isdigit():
            raise not_found(f"No {what} `{typed}`.")
        raise InvalidInput(f"`{typed}` is too short: give at least {MIN_PREFIX} characters of "
                           f"the {what} id.")
    rows = session.scalars(
        select(model).where(uuid_column.startswith(text, autoescape=True)).limit(2)
    ).unique().all()
    if len(rows) > 1:
        raise InvalidInput(f"`{typed}` matches more than one {what}; give more characters.")
    if rows and by_id is not None and rows[0] is not by_id:
        raise InvalidInput(f"`{typed}` is both {what} #{text} and the {what} whose id starts "
                           f"`{text}`: write `#{text}` for the first, or more characters of "
                           "the id for the second.")
    if rows:
        return rows[0]
    if by_id is not None:
        return by_id
    raise not_found(f"No {what} `{typed}`.")
