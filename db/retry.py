"""Which database errors are worth trying a whole transaction again for, and how.

MariaDB ends a deadlock (1213) or a lock wait timeout (1205) by rolling the victim's
transaction back; a deadlock inside a savepoint leaves that savepoint gone, so rolling back
to it fails with 1305. A lost connection (2006, 2013) and a busy SQLite file are as
transient. Nothing of such a transaction was committed, so running it again from the start
is safe: `retrying()` does that a few times, with jittered backoff (tenacity).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

TRANSIENT_CODES = frozenset({1205, 1213, 1305, 2006, 2013})


def is_transient(exc: BaseException) -> bool:
    """A deadlock, lock wait, dropped savepoint, lost connection or busy SQLite file."""
    if not isinstance(exc, OperationalError | DBAPIError):
        return False
    if getattr(exc, "connection_invalidated", False):
        return True
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    return code in TRANSIENT_CODES or "database is locked" in str(orig)


def retrying(attempts: int = 4) -> Retrying:
    """Attempts of a whole transaction: `for attempt in retrying(): with attempt: ...`."""
    return Retrying(retry=retry_if_exception(is_transient), reraise=True,
                    stop=stop_after_attempt(attempts),
                    wait=wait_random_exponential(multiplier=0.05, max=1.0))
