"""Job views and job buttons: `/jobs …`, `/job <id>`, `/cancel-job <id>`, Cancel / Retry / Show."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from db.base import utcnow
from db.models import Job, JobLog, JobStatus, Playbook, Server, User
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_OPERATOR, VIEWER


def add_job(slack, *, user=OPERATOR, status=JobStatus.failed, host="local", playbook="ping",
            logs=(), error=None, channel="C_OPS", ts=None) -> str:
    """A job as the workers would have left it (with log lines)."""
    now = utcnow()
    with transaction(slack.session_factory) as session:
        job = Job(
            playbook_id=session.scalar(select(Playbook.id).where(Playbook.name == playbook)),
            server_id=session.scalar(select(Server.id).where(Server.hostname == host)),
            user_id=session.scalar(select(User.id).where(User.slack_user_id == user)),
            status=status, created_at=now - timedelta(minutes=5),
            started_at=None if status == JobStatus.pending else now - timedelta(minutes=4),
            completed_at=now if status.is_final else None, error_message=error,
            slack_channel_id=channel, slack_message_ts=ts,
            recap={"hosts": {host: {"ok": 2, "changed": 0, "failed": 1, "unreachable": 0}},
                   "tasks": 3} if status.is_final else None)
        session.add(job)
        session.flush()
        for number, line in enumerate(logs, start=1):
            session.add(JobLog(job_id=job.id, line_number=number, content=line))
        return job.job_id


def test_jobs_lists_recent_jobs_for_a_viewer(slack):
    job_id = add_job(slack)

    result = slack.command(ids.CMD_JOBS, "", user=VIEWER)

    assert job_id[:8] in result.reply_text
    [row] = slack.audit("jobs.list")
    assert row.details["outcome"] == "allowed"


def test_jobs_filters_running_failed_and_mine(slack):
    failed = add_job(slack, status=JobStatus.failed)
    running = add_job(slack, status=JobStatus.running, host="stage-01")
    other = add_job(slack, status=JobStatus.success, user=OTHER_OPERATOR)

    running_view = slack.command(ids.CMD_JOBS, "running", user=VIEWER).reply_text
    failed_view = slack.command(ids.CMD_JOBS, "failed", user=VIEWER).reply_text
    mine = slack.command(ids.CMD_JOBS, "mine", user=OPERATOR).reply_text

    assert running[:8] in running_view and failed[:8] not in running_view
    assert failed[:8] in failed_view and running[:8] not in failed_view
    assert failed[:8] in mine and running[:8] in mine and other[:8] not in mine


def test_jobs_running_also_shows_jobs_waiting_for_their_server(slack):
    running = add_job(slack, status=JobStatus.running)
    waiting = add_job(slack, status=JobStatus.pending)  # the same server: it waits its turn

    view = slack.command(ids.CMD_JOBS, "running", user=VIEWER).reply_text

    assert "Running and queued jobs" in view
    assert running[:8] in view and waiting[:8] in view


def test_the_more_note_counts_what_is_left_out_in_the_singular_too(slack):
    for _ in range(21):
        add_job(slack, status=JobStatus.failed)

    view = slack.command(ids.CMD_JOBS, "failed", user=VIEWER).reply_text

    assert "and 1 more job" in view and "more jobs" not in view


def test_history_of_a_mentioned_user(slack):
    theirs = add_job(slack, user=OTHER_OPERATOR)

    result = slack.command(ids.CMD_JOBS, f"history <@{OTHER_OPERATOR}|oscar>", user=VIEWER)
    by_name = slack.command(ids.CMD_JOBS, "@oscar", user=VIEWER)

    assert "Jobs of oscar" in result.reply_text and theirs[:8] in result.reply_text
    assert theirs[:8] in by_name.reply_text


def test_unknown_user_in_history_gets_close_names(slack):
    result = slack.command(ids.CMD_JOBS, "history @oskar", user=VIEWER)

    assert "@oscar" in result.reply_text


def test_stats_count_the_last_seven_days_by_status(slack):
    add_job(slack, status=JobStatus.failed)
    add_job(slack, status=JobStatus.success)
    add_job(slack, status=JobStatus.success)

    result = slack.command(ids.CMD_JOBS, "stats", user=VIEWER)

    assert "Jobs in the last 7 days" in result.reply_text
    assert "succeeded*\n2" in result.reply_text and "Total*\n3" in result.reply_text


def test_a_mistyped_jobs_option_gets_the_closest_one(slack):
    result = slack.command(ids.CMD_JOBS, "runing", user=VIEWER)

    assert "Did you mean: running" in result.reply_text
    [row] = slack.audit("command")
    assert row.details["outcome"] == "denied" and row.resource_id == ids.CMD_JOBS


def test_job_shows_status_timings_recap_and_last_log_lines(slack):
    job_id = add_job(slack, logs=[f"line {n}" for n in range(1, 31)],
                     error="Task 'restart' failed on local: boom")

    result = slack.command(ids.CMD_JOB, job_id[:8], user=VIEWER)

    text = result.reply_text
    assert "failed" in text and "boom" in text
    assert "line 30" in text and "line 11" in text and "line 10\n" not in text
    assert "ok=2" in text  # per-host recap
    [row] = slack.audit("job.show")
    assert row.resource_id == job_id


def test_an_unknown_job_id_is_a_clear_error(slack):
    result = slack.command(ids.CMD_JOB, "deadbeef", user=VIEWER)

    assert "No job `deadbeef`" in result.reply_text


def test_operator_cancels_their_own_pending_job(slack):
    job_id = add_job(slack, status=JobStatus.pending, ts="1700000000.000555")

    result = slack.command(ids.CMD_CANCEL, job_id[:8], user=OPERATOR)

    assert slack.job(job_id).status == JobStatus.cancelled
    assert "cancelled" in result.reply_text
    [update] = result.updated
    assert update.params["ts"] == "1700000000.000555"
    [row] = slack.audit("job.cancel")
    assert row.details["outcome"] == "allowed"


def test_operator_cannot_cancel_someone_elses_job_but_an_admin_can(slack):
    job_id = add_job(slack, status=JobStatus.running, user=OTHER_OPERATOR)

    denied = slack.command(ids.CMD_CANCEL, job_id, user=OPERATOR)
    allowed = slack.command(ids.CMD_CANCEL, job_id, user=ADMIN)

    assert "Only an admin" in denied.reply_text
    assert "Stopping" in allowed.reply_text
    assert slack.job(job_id).cancel_requested
    outcomes = [r.details["outcome"] for r in slack.audit("job.cancel")]
    assert outcomes == ["denied", "allowed"]


def test_viewer_cannot_cancel(slack):
    job_id = add_job(slack, status=JobStatus.running)

    result = slack.command(ids.CMD_CANCEL, job_id, user=VIEWER)

    assert "operator role" in result.reply_text or "admin" in result.reply_text
    assert not slack.job(job_id).cancel_requested


def test_cancel_button_on_the_job_message(slack):
    job_id = add_job(slack, status=JobStatus.pending, ts="1700000000.000777")

    slack.click(ids.ACTION_JOB_CANCEL, job_id, user=OPERATOR, message_ts="1700000000.000777")

    assert slack.job(job_id).status == JobStatus.cancelled


def test_retry_button_starts_a_new_job_once_even_on_a_double_click(slack):
    job_id = add_job(slack, status=JobStatus.failed)

    first = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)
    second = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)

    jobs = slack.jobs()
    assert len(jobs) == 2
    retry = jobs[-1]
    assert retry.retry_of_id == jobs[0].id and retry.status == JobStatus.pending
    assert slack.queue.enqueued == [retry.job_id]
    assert len(first.posted) == 1 and second.posted == []
    assert "already in progress" in second.reply_text  # the second click finds the first's


def test_viewer_cannot_retry(slack):
    job_id = add_job(slack, status=JobStatus.failed)

    result = slack.click(ids.ACTION_JOB_RETRY, job_id, user=VIEWER)

    assert "operator role" in result.reply_text
    assert len(slack.jobs()) == 1
    [row] = slack.audit("job.retry")
    assert row.details["outcome"] == "denied"


def test_show_button_replies_privately_with_the_details(slack):
    job_id = add_job(slack, logs=["PLAY [all]", "TASK [ping]"])

    result = slack.click(ids.ACTION_JOB_SHOW, job_id, user=VIEWER)

    [reply] = result.replies
    assert reply.via == "response_url"
    assert "TASK [ping]" in reply.full_text


def test_show_from_app_home_opens_a_modal(slack):
    job_id = add_job(slack)

    result = slack.click(ids.ACTION_JOB_SHOW, job_id, user=VIEWER,
                         view={"id": "V_HOME", "type": "home"})

    [view] = result.views
    assert view["callback_id"] == ids.VIEW_JOB_DETAILS


def test_job_details_show_variables_as_a_playbook_writes_them(slack):
    job_id = add_job(slack, status=JobStatus.success)
    with transaction(slack.session_factory) as session:
        job = session.scalars(select(Job).where(Job.job_id == job_id)).unique().one()
        job.extra_vars = {"verbose": True, "dry": False, "hosts": ["a", "b"], "note": None}

    text = slack.command(ids.CMD_JOB, job_id, user=VIEWER).reply_text

    assert "`verbose` = `true`" in text and "`dry` = `false`" in text
    assert '`hosts` = `["a", "b"]`' in text and "`note` = `null`" in text
    assert "True" not in text and "False" not in text and "None" not in text
