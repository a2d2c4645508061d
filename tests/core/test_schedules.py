"""Schedule times: cron in a time zone across DST (as cronsim documents), one-off times."""

from __future__ import annotations

from datetime import UTC, datetime

from core.schedules import next_fire
from db.models import Schedule


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_daily_cron_keeps_local_time_across_dst_and_a_skipped_time_fires_after_the_gap():
    daily = Schedule(cron="0 3 * * *", timezone="Europe/Paris")
    assert next_fire(daily, at(2026, 3, 28, 12, 0)) == at(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert next_fire(daily, at(2026, 3, 27, 12, 0)) == at(2026, 3, 28, 2, 0)  # 03:00 CET
    in_gap = Schedule(cron="30 2 * * *", timezone="Europe/Paris")  # 02:30 does not exist
    assert next_fire(in_gap, at(2026, 3, 28, 12, 0)) == at(2026, 3, 29, 1, 0)  # 03:00 CEST


def test_a_one_off_schedule_fires_once():
    once = Schedule(cron=None, run_at=at(2026, 12, 24, 17, 0), timezone="UTC")
    assert next_fire(once, at(2026, 12, 24, 16, 0)) == at(2026, 12, 24, 17, 0)
    assert next_fire(once, at(2026, 12, 24, 17, 0)) is None
