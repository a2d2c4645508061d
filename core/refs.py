"""Finding a job or ticket from what a user typed: its uuid, a unique uuid prefix, or its id."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import InvalidInput, NotFound

MIN_PREFIX = 6
_HEX_PREFIX = re.compile(r"^[0-9a-f-]+$")
T = TypeVar("T")


def find(session: Session, model: type[T], uuid_column: InstrumentedAttribute[Any], ref: str | int,
         *, what: str, not_found: type[NotFound]) -> T:
    """The row of `model` that `ref` names.

    ref: a full uuid, a unique prefix of at least 6 characters, or the numeric id (`#12` too).
    Raises `not_found` when nothing matches, InvalidInput for an ambiguous or too short prefix.
    """
    text = str(ref).strip().lstrip("#").lower()
    if not text:
        raise InvalidInput(f"Which {what}? Give its id.")
    if text.isdigit() and len(text) < 19:
        row = session.get(model, int(text))
        if row is not None:
            return row
        if len(text) < MIN_PREFIX:
            raise not_found(f"No {what} `{ref}`.")
    if not _HEX_PREFIX.match(text):
        raise not_found(f"No {what} `{ref}`: a {what} id looks like `3f2a9c1e`.")
    if len(text) < MIN_PREFIX:
        raise InvalidInput(f"`{ref}` is too short: give at least {MIN_PREFIX} characters of the "
                           f"{what} id.")
    rows = session.scalars(
        select(model).where(uuid_column.startswith(text, autoescape=True)).limit(2)
    ).unique().all()
    if not rows:
        raise not_found(f"No {what} `{ref}`.")
    if len(rows) > 1:
        raise InvalidInput(f"`{ref}` matches more than one {what}; give more characters.")
    return rows[0]
