"""Schedules: added and managed from Slack (signed requests through the real app), fired by the
clock's `fire_schedules` step with a controllable clock, posting to FakeSlack."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from db.models import JobStatus, JobTemplate, Schedule
from slackui import ids
from tests.handlers.fixtures import ADMIN, BOT_TOKEN, OPERATOR, OTHER_ADMIN, VIEWER
from tests.handlers.test_approval_preview import check_safe_playbook  # noqa: F401 - fixture
from workers.config import WorkerConfig
from workers.schedules import fire_schedules

SCHEDULES = ids.CMD_SCHEDULES


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def clock(slack, now, sent=None):
    """One pass of the clock's schedule step at `now`."""
    settings = slack.runtime.settings
    config = WorkerConfig(database_url=settings.database_url, slack_token=BOT_TOKEN,
                          slack_api_url=settings.slack_api_url,
                          playbook_dir=settings.playbook_dir)
    before = len(slack.fake.calls)
    sender = (lambda job_id: (sent.append(job_id), f"m-{len(sent)}")[1]) if sent is not None \
        else None
    outcomes = fire_schedules(config, send=sender, now=now)
    posts = [c for c in slack.fake.calls[before:] if c.method == "chat.postMessage"]
    return outcomes, posts


def template(slack, target="local", user=OPERATOR):
    result = slack.command(ids.CMD_TEMPLATES, f"add nightly-ping ping {target}", user=user)
    assert "Saved template" in result.reply_text, result.reply_text


def set_next_run(slack, when):
    with slack.session_factory() as session:
        session.execute(update(Schedule).values(next_run_at=when))
        session.commit()


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_cron_schedule_runs_its_template_at_its_time_as_a_normal_job_once(slack):
    # given a weekday schedule at 03:00 Paris time
    template(slack)
    added = slack.command(SCHEDULES, 'add nightly nightly-ping cron "0 3 * * 1-5" '
                          "Europe/Paris", user=OPERATOR, channel="C_OPS")
    assert "Schedule *nightly* added; next run" in added.reply_text
    listing = slack.command(SCHEDULES, "", user=VIEWER)
    assert "nightly" in listing.reply_text and "Europe/Paris" in listing.reply_text
    # when the clock passes Monday 2026-12-07 03:00 Paris (02:00 UTC), twice
    set_next_run(slack, at(2026, 12, 7, 2, 0))
    sent: list[str] = []
    outcomes, posts = clock(slack, at(2026, 12, 7, 2, 0, 30), sent)
    again, _ = clock(slack, at(2026, 12, 7, 2, 0, 40), sent)
    # then one job, queued once, posted in the schedule's channel with a thread note
    [job] = slack.jobs()
    assert (job.playbook.name, job.server.hostname, job.user.username) == (
        "ping", "local", "alice")
    assert job.status == JobStatus.pending and sent == [job.job_id]
    assert again == []
    assert posts[0].params["channel"] == "C_OPS"
    assert "Schedule *nightly*" in posts[1].params["text"]
    assert posts[1].params["thread_ts"]
    [row] = slack.audit("schedule.run")
    assert row.user_id is None and row.details["owner"] == "alice"
    # and the next run is Tuesday 03:00 Paris
    [outcome] = outcomes
    assert outcome.schedule.next_run_at == at(2026, 12, 8, 2, 0)


def test_missed_runs_follow_the_policy_skip_or_run_once_and_the_channel_is_told(slack):
    template(slack)
    slack.command(SCHEDULES, 'add hourly nightly-ping cron "0 * * * *"', user=OPERATOR)
    slack.command(SCHEDULES, 'add hourly-once nightly-ping cron "30 * * * *" --missed=once',
                  user=OPERATOR)
    # the clock was down from 01:00 to 05:10
    set_next_run(slack, at(2026, 12, 7, 1, 0))
    outcomes, posts = clock(slack, at(2026, 12, 7, 5, 10))
    by_name = {o.schedule.name: o for o in outcomes}
    assert by_name["hourly"].result is None and by_name["hourly"].missed == 5
    assert "policy is *skip*: not run" in by_name["hourly"].note
    assert by_name["hourly-once"].result is not None
    assert "policy is *run once*: running it once now" in by_name["hourly-once"].note
    assert len(slack.jobs()) == 1
    texts = " ".join(p.params["text"] for p in posts)
    assert "not run" in texts and "running it once now" in texts
    assert by_name["hourly"].schedule.next_run_at == at(2026, 12, 7, 6, 0)


def test_pause_and_resume_and_a_one_off_schedule(slack):
    template(slack)
    slack.command(SCHEDULES, "add later nightly-ping at 2030-01-02 10:00 Europe/Paris",
                  user=OPERATOR)
    paused = slack.command(SCHEDULES, "pause later", user=OPERATOR)
    assert "is paused" in paused.reply_text
    outcomes, _ = clock(slack, at(2030, 1, 2, 9, 0, 30))
    assert outcomes == [] and slack.jobs() == []
    refused = slack.command(SCHEDULES, "resume later", user=VIEWER)
    assert "operator" in refused.reply_text or "admin" in refused.reply_text
    resumed = slack.command(SCHEDULES, "resume later", user=ADMIN)
    assert "resumed" in resumed.reply_text
    outcomes, _ = clock(slack, at(2030, 1, 2, 9, 0, 30))
    assert [o.result is not None for o in outcomes] == [True]
    with slack.session_factory() as session:
        assert session.query(Schedule).one().next_run_at is None  # done


def test_a_production_schedule_needs_an_up_front_approval_bound_to_the_template(slack):
    # given a schedule of a production template, owned by an admin
    template(slack, target="prod-local", user=ADMIN)
    added = slack.command(SCHEDULES, 'add prod nightly-ping cron "0 3 * * *"', user=ADMIN)
    assert "an admin other than you must approve it first" in added.reply_text
    set_next_run(slack, at(2026, 12, 7, 3, 0))
    outcomes, posts = clock(slack, at(2026, 12, 7, 3, 0, 10))
    assert outcomes[0].skipped == "suspended" and slack.jobs() == []
    assert "needs the approval of an admin other than its owner" in posts[0].params["text"]
    # the owner cannot approve their own schedule; another admin can
    own = slack.command(SCHEDULES, "approve prod", user=ADMIN)
    assert "another admin must approve" in own.reply_text
    approved = slack.command(SCHEDULES, "approve prod", user=OTHER_ADMIN)
    assert "is approved" in approved.reply_text
    set_next_run(slack, at(2026, 12, 8, 3, 0))
    sent: list[str] = []
    outcomes, _ = clock(slack, at(2026, 12, 8, 3, 0, 10), sent)
    [job] = slack.jobs()
    assert job.status == JobStatus.pending and sent == [job.job_id]  # approved up front
    # when the template changes, the schedule is suspended until approved again
    with slack.session_factory() as session:
        session.execute(update(JobTemplate).values(check_mode=True))
        session.commit()
    set_next_run(slack, at(2026, 12, 9, 3, 0))
    outcomes, posts = clock(slack, at(2026, 12, 9, 3, 0, 10))
    assert outcomes[0].skipped == "suspended" and len(slack.jobs()) == 1
    assert "changed since @carol approved it" in posts[0].params["text"]


def test_a_scheduled_run_inside_a_change_freeze_is_skipped_and_says_so(slack):
    template(slack)
    slack.command(SCHEDULES, 'add nightly nightly-ping cron "0 18 * * 5"', user=OPERATOR)
    slack.command(ids.CMD_FREEZE, "add development fri 16:00 mon 08:00 UTC Weekend freeze",
                  user=ADMIN)
    set_next_run(slack, at(2026, 12, 4, 18, 0))  # a Friday
    outcomes, posts = clock(slack, at(2026, 12, 4, 18, 0, 5))
    assert outcomes[0].skipped == "frozen" and slack.jobs() == []
    assert "frozen until Mon 2026-12-07 08:00 UTC" in posts[0].params["text"]
    assert "Weekend freeze" in posts[0].params["text"]
    [row] = slack.audit("schedule.skip")
    assert row.details["reason"] == "frozen"
    # a template with a schedule cannot be removed from under it
    refused = slack.command(ids.CMD_TEMPLATES, "remove nightly-ping", user=OPERATOR)
    assert "used by schedule `nightly`" in refused.reply_text


def test_a_scheduled_production_run_of_a_check_safe_playbook_makes_no_preview(
        slack, check_safe_playbook):  # noqa: F811 - the fixture imported above
    # given an approved production schedule of a check-safe playbook's template
    result = slack.command(ids.CMD_TEMPLATES, "add nightly-conf configure prod-local",
                           user=ADMIN)
    assert "Saved template" in result.reply_text, result.reply_text
    slack.command(SCHEDULES, 'add conf nightly-conf cron "0 3 * * *"', user=ADMIN)
    assert "is approved" in slack.command(SCHEDULES, "approve conf",
                                          user=OTHER_ADMIN).reply_text
    set_next_run(slack, at(2026, 12, 8, 3, 0))

    # when it fires
    sent: list[str] = []
    clock(slack, at(2026, 12, 8, 3, 0, 10), sent)

    # then its run is sent at once, and no check-mode preview is made (the request was
    # decided up front: a preview would run after the real run, for nobody)
    [job] = slack.jobs()
    assert job.status == JobStatus.pending and not job.check_mode
    assert sent == [job.job_id]
