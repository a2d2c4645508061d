"""Locking reads that lock only the row they name.

On MariaDB/MySQL a locking read (`... LOCK IN SHARE MODE` / `FOR UPDATE`) locks every row it
reads, in every table of the statement. `Job`'s playbook, server and user (and `Ticket`'s job,
creator and assignee) are `lazy="joined"` relationships, so a locking `select(Job)` or
`session.refresh(job, with_for_update=...)` also share-locks the job's `servers` row — the
row a worker's claim holds `FOR UPDATE` while it updates its jobs. A cancel or an approval
that had already updated a job then waited for that server while the claim waited for the
job: a deadlock (MariaDB error 1213). MariaDB ignores `FOR UPDATE OF <table>`, so the only
portable way is a statement that reads one table.

`latest(session, instance)` re-reads one row with a lock on that row alone and lets its
relationships load afterwards with plain (non-locking) reads. The lock order the project keeps
(docs/database.md, "Lock order"): servers before jobs, each in id order; tickets and users
are locked one row at a time by primary key, after the jobs they belong to.

SQLite ignores these clauses (one writer at a time): there `latest` is a plain re-read.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import MANYTOONE, Session, lazyload

T = TypeVar("T")


def latest(session: Session, instance: T, *, exclusive: bool = False) -> T:
    """Re-read `instance`'s row as last committed, locking that row only.

    A shared lock by default (`exclusive=True`: FOR UPDATE). Its columns are overwritten with
    what the database holds; its relationships are reset and loaded again right after, without
    locks (many-to-one ones come from the session when already there). Returns the
    same instance, its many-to-one relationships loaded. Raises NoResultFound if the row is
    gone.
    """
    state = inspect(instance)
    mapper = state.mapper
    criteria = [column == value for column, value in
                zip(mapper.primary_key, state.identity or (), strict=True)]
    query = (select(mapper).where(*criteria).options(lazyload("*"))
             .with_for_update(read=not exclusive)
             .execution_options(populate_existing=True))
    row = session.execute(query).scalar_one()
    for relationship in mapper.relationships:
        if relationship.direction is MANYTOONE:
            # loaded now, by plain reads after the lock, as the eager loads had them: callers
            # read them after the transaction ends (a detached row cannot load them then)
            getattr(row, relationship.key)
    return row  # type: ignore[no-any-return]
