"""Housekeeping: expired approval requests and reaped jobs are shown in Slack."""

from __future__ import annotations

import threading
from datetime import timedelta

from slack_sdk import WebClient

from db.base import utcnow
from db.models import JobStatus, Ticket, TicketKind, TicketStatus
from workers import housekeeping
from workers.notifier import drain


def test_an_expired_approval_request_is_closed_and_its_messages_say_so(sqlite_world,
                                                                       config_for):
    world, fake = sqlite_world, sqlite_world.slack
    job_id = world.job("ok", status=JobStatus.awaiting_approval)
    ts = WebClient(token="x", base_url=fake.api_url).chat_postMessage(
        channel="C_OPS", text="Approval needed")["ts"]
    with world.factory.begin() as s:
        s.add(Ticket(kind=TicketKind.approval, job_id=world.job_pk(job_id),
                     created_by=world.user(), title="approve ok on local",
                     status=TicketStatus.open, expires_at=utcnow() - timedelta(minutes=1),
                     created_at=utcnow() - timedelta(minutes=61),
                     slack_channel_id="C_OPS", slack_message_ts=ts))

    expired = housekeeping.expire_approvals(config_for(world))

    assert expired == 1
    job = world.get(job_id)
    assert job.status == JobStatus.cancelled
    assert "expired" in fake.find_message("C_OPS", ts).text.lower()
    assert fake.find_message("C_OPS", job.slack_message_ts).text.startswith(":no_entry_sign:")


def test_a_reaped_job_shows_the_reason_and_its_ticket_in_slack(sqlite_world, config_for):
    world, fake = sqlite_world, sqlite_world.slack
    job_id = world.job("ok")
    world.set(job_id, status=JobStatus.running, started_at=utcnow() - timedelta(minutes=5),
              heartbeat_at=utcnow() - timedelta(minutes=5))

    reaped = housekeeping.reap(config_for(world))
    assert drain(5)

    assert reaped == [job_id]
    job = world.get(job_id)
    assert "worker lost" in fake.find_message("C_OPS", job.slack_message_ts).text
    [ticket] = world.tickets(job_id)
    assert ticket.slack_message_ts in {m.ts for m in fake.thread("C_OPS", job.slack_message_ts)}


def test_a_clock_started_soon_after_boot_archives_logs_on_its_first_pass(
        sqlite_world, config_for, monkeypatch):
    # given a machine up for only 5 s (monotonic time starts near 0 at boot)
    import time as time_module

    from workers import main

    stop = threading.Event()
    archived = []

    def archive(config) -> None:  # noqa: ANN001
        archived.append(config)
        stop.set()

    monkeypatch.setattr(time_module, "monotonic", lambda: 5.0)
    monkeypatch.setattr(main.housekeeping, "archive_logs", archive)
    # when the clock starts (and is stopped after 3 s if it never archives)
    threading.Timer(3, stop.set).start()
    main.run_clock(config_for(sqlite_world), stop=stop, install_signals=False)
    # then its first pass archived old logs, without waiting an hour
    assert len(archived) == 1
