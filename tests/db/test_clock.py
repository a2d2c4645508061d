"""db.clock: the database's time, read and written, on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from db.clock import db_now, now
from db.models import ClockState


def test_now_is_the_database_time_as_an_aware_utc_datetime(session):
    value = now(session)

    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    # the suite's database servers run on this machine: the same clock, give or take
    assert abs(value - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_time_written_with_db_now_reads_back_ordered_and_comparable(session):
    # given a row stamped by the database in an UPDATE
    session.add(ClockState(name="stamp-test"))
    session.flush()
    before = now(session)
    session.execute(update(ClockState).where(ClockState.name == "stamp-test")
                    .values(updated_at=db_now()))
    stamped = session.execute(select(ClockState.updated_at)
                              .where(ClockState.name == "stamp-test")).scalar_one()

    # then it compares with times read from the database, in SQL and in Python
    assert before <= stamped <= now(session)
    assert session.execute(select(ClockState.name).where(
        ClockState.name == "stamp-test", ClockState.updated_at <= db_now())).scalar_one()
