"""What clock processes share through the database: leases and the queue epoch.

- **Leases** (`take_lease`, `release_lease`): a named row held by one holder until
  `expires_at`, database time. Taking it is one conditional UPDATE (free, expired, or
  already ours), so of two clocks exactly one holds it; the holder renews it as it works
  and stops when a renewal fails. A holder that died lets it go when it expires.
- **Queue epoch** (`note_queue_epoch`): the broker's identity as the clock last saw it. When
  it changes (Redis restarted or was flushed, the embedded process restarted), the time the
  change was first noticed is kept: messages sent before it and not yet taken by a worker
  may be gone, and `core.execution.requeue_candidates` sends them again.

Plain functions on a Session; the caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.clock import now as db_time
from db.models import ClockState
from db.session import savepoint

QUEUE_EPOCH = "queue_epoch"


def _ensure(session: Session, name: str) -> None:
    """Create the named row if a database lacks it (revision 0006 inserts the known ones)."""
    if session.get(ClockState, name) is not None:
        return
    try:
        with savepoint(session):
            session.add(ClockState(name=name))
            session.flush()
    except IntegrityError:
        pass  # a concurrent caller made it


def take_lease(session: Session, name: str, holder: str, *, ttl: timedelta | float) -> bool:
    """Take or renew the lease `name` for `holder` for `ttl`; True when `holder` now holds
    it, False while someone else's lease has not expired. Commit to make it visible."""
    ttl = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
    _ensure(session, name)
    now = db_time(session)
    taken = session.execute(
        update(ClockState)
        .where(ClockState.name == name,
               or_(ClockState.holder.is_(None), ClockState.holder == holder,
                   ClockState.expires_at.is_(None), ClockState.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return taken == 1


def release_lease(session: Session, name: str, holder: str) -> None:
    """Give the lease up if `holder` still holds it."""
    session.execute(
        update(ClockState).where(ClockState.name == name, ClockState.holder == holder)
        .values(holder=None, expires_at=None)
        .execution_options(synchronize_session=False)
    )


def note_queue_epoch(session: Session, epoch: str) -> datetime | None:
    """Record the broker's current `epoch`; return when the broker last lost its data: the
    time the current epoch was first seen. The first epoch ever recorded counts as a loss
    too (nothing is known of the queue before it): what was queued then is sent once more,
    a duplicate the claim makes harmless, rather than risk a job waiting forever."""
    _ensure(session, QUEUE_EPOCH)
    # a locking read: it sees the row even when another clock committed it after this
    # transaction's snapshot (REPEATABLE READ), and holds it until the caller commits
    row = session.execute(
        select(ClockState.value, ClockState.updated_at).where(ClockState.name == QUEUE_EPOCH)
        .with_for_update()
    ).one()
    if row.value == epoch:
        return row.updated_at
    previous = (ClockState.value.is_(None) if row.value is None
                else ClockState.value == row.value)
    session.execute(
        update(ClockState).where(ClockState.name == QUEUE_EPOCH, previous)
        .values(value=epoch[:255], updated_at=db_time(session))
        .execution_options(synchronize_session=False)
    )
    return session.execute(
        select(ClockState.updated_at).where(ClockState.name == QUEUE_EPOCH,
                                            ClockState.value == epoch[:255])
    ).scalar()
