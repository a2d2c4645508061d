"""Retry, any number of times: each click is its own request; while a retry of the job is in
progress, another Retry (by anyone) points at it; once it ended, Retry makes a new job."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from db.models import Job, JobStatus, job_values
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, OTHER_OPERATOR
from tests.handlers.test_jobs import add_job

pytestmark = pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)


def _end(slack, job_id: str, status: JobStatus) -> None:  # type: ignore[no-untyped-def]
    """End a job as a worker would."""
    with transaction(slack.session_factory) as session:
        session.execute(update(Job).where(Job.job_id == job_id)
                        .values(job_values(status=status)))


def _retries_of(slack, job_id: str) -> list[Job]:  # type: ignore[no-untyped-def]
    with slack.session_factory() as session:
        original = session.scalars(select(Job).where(Job.job_id == job_id)).unique().one()
        return list(session.scalars(select(Job).where(Job.retry_of_id == original.id)
                                    .order_by(Job.id)).unique())


def test_a_job_can_be_retried_again_each_time_its_retry_has_ended(slack):
    # given a failed job that was retried, and the retry failed too
    job_id = add_job(slack, status=JobStatus.failed)
    slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)
    [first] = _retries_of(slack, job_id)
    _end(slack, first.job_id, JobStatus.failed)

    # when Retry on the original is clicked again, later, and once more after that ended
    second_click = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)
    _, second = _retries_of(slack, job_id)
    _end(slack, second.job_id, JobStatus.cancelled)
    third_click = slack.click(ids.ACTION_JOB_RETRY, job_id, user=ADMIN)

    # then each click started a new job of its own, announced and queued
    retries = _retries_of(slack, job_id)
    assert len(retries) == 3
    assert retries[2].status == JobStatus.pending
    assert slack.queue.enqueued == [r.job_id for r in retries]
    assert "already received" not in second_click.reply_text + third_click.reply_text
    assert len(second_click.posted) == 1 and len(third_click.posted) == 1


def test_retry_while_a_retry_is_in_progress_points_at_it_whoever_clicks(slack):
    # given a failed job whose retry is running
    job_id = add_job(slack, status=JobStatus.failed)
    slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)
    [retry] = _retries_of(slack, job_id)
    with transaction(slack.session_factory) as session:
        session.execute(update(Job).where(Job.job_id == retry.job_id)
                        .values(job_values(status=JobStatus.running)))

    # when the same operator and then another one click Retry on the original
    mine = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR)
    theirs = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OTHER_OPERATOR)

    # then nothing new starts: both are pointed at the running retry
    assert [r.job_id for r in _retries_of(slack, job_id)] == [retry.job_id]
    assert slack.queue.enqueued == [retry.job_id]
    for answer in (mine, theirs):
        assert "already in progress" in answer.reply_text
        assert retry.job_id[:8] in answer.reply_text
        assert answer.posted == []


def test_the_same_click_delivered_twice_is_one_retry(slack):
    # given a failed job
    job_id = add_job(slack, status=JobStatus.failed)

    # when one click reaches the app twice (same trigger_id), even after its retry ended
    first = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR, trigger_id="T-ONE")
    [retry] = _retries_of(slack, job_id)
    _end(slack, retry.job_id, JobStatus.failed)
    again = slack.click(ids.ACTION_JOB_RETRY, job_id, user=OPERATOR, trigger_id="T-ONE")

    # then it made one job
    assert len(_retries_of(slack, job_id)) == 1
    assert len(first.posted) == 1 and again.posted == []
    assert "already received" in again.reply_text


def test_retry_failed_hosts_works_again_after_the_first_retry_ended(slack):
    # given a failed run whose failed-hosts retry failed as well
    job_id = add_job(slack, status=JobStatus.failed)
    slack.command(ids.CMD_RUN_PLAYBOOK, f"--retry-failed {job_id}", user=OPERATOR)
    [first] = _retries_of(slack, job_id)
    again_now = slack.command(ids.CMD_RUN_PLAYBOOK, f"--retry-failed {job_id}", user=OPERATOR)
    _end(slack, first.job_id, JobStatus.failed)

    # when the failed hosts of the original run are retried again
    later = slack.command(ids.CMD_RUN_PLAYBOOK, f"--retry-failed {job_id}", user=OPERATOR)

    # then the retry in progress was not doubled, and the later one is a new run
    retries = _retries_of(slack, job_id)
    assert len(retries) == 2 and retries[0].run_id != retries[1].run_id
    assert "not started again" in again_now.reply_text
    assert "already received" not in later.reply_text
