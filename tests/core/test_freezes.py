"""Change freeze windows: weekly ones in a time zone across DST, one-off ones, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core import freezes
from core.errors import InvalidInput, NotAllowed
from db.models import Environment


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def weekly(world, **kwargs):
    return freezes.add_window(world.session, world.user("alice"), environment="production",
                              start="fri 16:00", end="mon 08:00",
                              timezone_name=kwargs.pop("tz", "Europe/Paris"),
                              reason="Weekend freeze", **kwargs)


def test_a_weekly_window_holds_from_friday_to_monday_local_time_across_dst(world):
    window = weekly(world)
    # the weekend of 27-30 March 2026: Paris moves from UTC+1 to UTC+2 on Sunday
    assert freezes.in_force(window, at(2026, 3, 27, 14, 59)) is None
    assert freezes.in_force(window, at(2026, 3, 27, 15, 0)) == at(2026, 3, 30, 6, 0)
    assert freezes.in_force(window, at(2026, 3, 29, 12, 0)) == at(2026, 3, 30, 6, 0)
    assert freezes.in_force(window, at(2026, 3, 30, 5, 59)) == at(2026, 3, 30, 6, 0)
    assert freezes.in_force(window, at(2026, 3, 30, 6, 0)) is None
    # a summer weekend: both ends at UTC+2
    assert freezes.in_force(window, at(2026, 7, 3, 14, 0)) == at(2026, 7, 6, 6, 0)
    assert freezes.in_force(window, at(2026, 7, 1, 12, 0)) is None


def test_launch_checks_refuse_frozen_servers_and_break_glass_passes(world):
    weekly(world)
    servers = [world.servers["prod-01"], world.servers["web-01"]]
    friday_evening = at(2026, 7, 3, 18, 0)
    with pytest.raises(freezes.Frozen, match="production are frozen until Mon 2026-07-06 "
                                             "08:00 Europe/Paris"):
        freezes.check_servers(world.session, servers, break_glass=None, now=friday_evening)
    hits = freezes.check_servers(world.session, servers, break_glass="outage",
                                 now=friday_evening)
    assert list(hits) == [world.servers["prod-01"].id]
    assert freezes.check_servers(world.session, servers, break_glass=None,
                                 now=at(2026, 7, 1, 12, 0)) == {}


def test_a_one_off_window_for_every_environment_and_ending_it(world):
    now = datetime.now(UTC)
    day = now.date()
    window = freezes.add_window(world.session, world.user("alice"), environment="all",
                                start=f"{day - timedelta(days=1)} 00:00",
                                end=f"{day + timedelta(days=2)} 00:00", reason="Holidays")
    hits = freezes.active_hits(world.session, [Environment.development], now)
    assert hits[Environment.development].window.id == window.id
    freezes.end_window(world.session, world.user("dave"), window.id)
    assert freezes.active_hits(world.session, [Environment.development], now) == {}


def test_bad_windows_and_non_admins_are_refused(world):
    with pytest.raises(NotAllowed):
        freezes.add_window(world.session, world.user("oscar"), environment="production",
                           start="fri 16:00", end="mon 08:00", reason="x")
    with pytest.raises(InvalidInput, match="time zone"):
        weekly(world, tz="Mars/Olympus")
    with pytest.raises(InvalidInput, match="already ended"):
        freezes.add_window(world.session, world.user("alice"), environment="production",
                           start="2020-01-01 00:00", end="2020-01-02 00:00", reason="old")
    with pytest.raises(InvalidInput, match="reason"):
        freezes.add_window(world.session, world.user("alice"), environment="production",
                           start="fri 16:00", end="mon 08:00", reason=" ")
