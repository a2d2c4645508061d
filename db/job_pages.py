"""Jobs a page at a time, newest first, for the HTTP API's `GET /api/jobs` (keyset paging).

The filters are the ERD's patterns 1 and 3 — status (one or several), user, since — read
from the same indexes as `db.queries.recent_jobs` / `user_history`: `idx_jobs_status_created`
for a status, `idx_jobs_user_status` for a user. Order: `created_at` descending, the primary
key breaking ties; a page ends with the (created_at, id) of its last job, and the next page
starts strictly after it, so paging never skips or repeats a job however many are added
meanwhile, and a deep page costs what the first one does.

Only reads; never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from db.models import Job, JobStatus

_RELATED = (selectinload(Job.playbook), selectinload(Job.server), selectinload(Job.user))


def jobs_page(
    session: Session,
    *,
    statuses: Sequence[JobStatus] = (),
    user_id: int | None = None,
    since: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Up to `limit` jobs matching every filter, newest first, starting after the
    `(created_at, id)` key `after` (the last job of the previous page).

    No status: every job but archived ones (the ERD's soft delete), as `recent_jobs` does.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    stmt = select(Job).options(*_RELATED)
    if statuses:
        stmt = stmt.where(Job.status.in_(sorted(set(statuses), key=lambda s: s.value)))
    else:
        stmt = stmt.where(Job.status != JobStatus.archived)
    if user_id is not None:
        stmt = stmt.where(Job.user_id == user_id)
    if since is not None:
        stmt = stmt.where(Job.created_at >= since)
    if after is not None:
        created, pk = after
        stmt = stmt.where(or_(Job.created_at < created,
                              and_(Job.created_at == created, Job.id < pk)))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(stmt))
