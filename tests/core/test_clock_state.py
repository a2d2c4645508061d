"""core.clock_state: the clocks' lease and queue epoch, on SQLite and MariaDB."""

from __future__ import annotations

import time

from sqlalchemy import delete, select

from core.clock_state import QUEUE_EPOCH, note_queue_epoch, release_lease, take_lease
from db.models import ClockState


def test_a_lease_has_one_holder_until_it_is_released_or_expires(session):
    assert take_lease(session, "retention", "clock-a", ttl=60)
    assert not take_lease(session, "retention", "clock-b", ttl=60)
    assert take_lease(session, "retention", "clock-a", ttl=60)  # renewing is fine

    release_lease(session, "retention", "clock-a")
    assert take_lease(session, "retention", "clock-b", ttl=0.2)
    time.sleep(0.4)
    assert take_lease(session, "retention", "clock-a", ttl=60)  # b's expired


def test_a_lease_missing_from_the_database_is_created_on_first_use(session):
    assert take_lease(session, "some-other-job", "clock-a", ttl=60)
    assert not take_lease(session, "some-other-job", "clock-b", ttl=60)


def test_the_queue_epoch_reports_when_the_queue_last_lost_its_data(session):
    first = note_queue_epoch(session, "redis:run-1:token-1")
    assert first is not None  # nothing was known before: counts as a loss
    assert note_queue_epoch(session, "redis:run-1:token-1") == first  # unchanged

    time.sleep(0.01)
    restarted = note_queue_epoch(session, "redis:run-2:token-2")
    assert restarted is not None and restarted > first
    assert note_queue_epoch(session, "redis:run-2:token-2") == restarted


def test_a_clock_whose_snapshot_predates_anothers_epoch_row_still_reads_it(session_factory):
    # given no epoch row yet, and a clock whose transaction has already read something
    with session_factory.begin() as setup:
        setup.execute(delete(ClockState).where(ClockState.name == QUEUE_EPOCH))
    late = session_factory()
    late.execute(select(ClockState.name)).all()  # its REPEATABLE READ snapshot starts here
    # when another clock creates the row and records the epoch first
    with session_factory.begin() as early:
        seen_first = note_queue_epoch(early, "redis:run-1:token-1")

    # then the late clock reads that row instead of failing, and agrees on the epoch's time
    assert note_queue_epoch(late, "redis:run-1:token-1") == seen_first
    late.commit()
    late.close()
