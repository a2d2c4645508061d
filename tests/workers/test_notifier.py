"""workers.notifier against FakeSlack: coalesced thread posts within Slack's limits, a file
when output overflows, and Slack trouble never slowing the caller."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient

from core.progress import RunProgress
from db.models import JobStatus
from slackui import ids
from workers.notifier import ChannelPacer, JobNotifier, Limits, make_client


@pytest.fixture
def client(fake_slack) -> WebClient:
    return make_client("xoxb-test", fake_slack.api_url)


def _notifier(client, job, **kwargs) -> JobNotifier:
    kwargs.setdefault("pacer", ChannelPacer())
    return JobNotifier(client, job, jobs_channel="C_JOBS", **kwargs)


def _finished(sqlite_world, job_id, status=JobStatus.success, **values):
    sqlite_world.set(job_id, status=status, **values)
    return sqlite_world.get(job_id)


def test_output_goes_to_the_thread_in_few_coalesced_posts_within_size_limits(
        sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    notifier = _notifier(client, job, limits=Limits(post_interval=0.3, update_interval=0.3))

    for i in range(3_000):
        notifier.lines([(f"line {i} " + "x" * 20, "INFO")])
    deadline = time.monotonic() + 20  # the run goes on while the output is posted
    while notifier._buffer and time.monotonic() < deadline:
        time.sleep(0.05)
    notifier.finish(_finished(sqlite_world, job_id), total_lines=3_000)
    assert notifier.join(20)

    thread = fake_slack.thread("C_OPS", job.slack_message_ts)
    shown = [line for m in thread for b in m.blocks
             for line in b["text"]["text"].strip("`\n").split("\n")]
    assert shown == [f"line {i} " + "x" * 20 for i in range(3_000)]
    assert len(thread) <= 10
    for message in thread:
        assert len(message.blocks) <= 4
        assert all(len(b["text"]["text"]) <= 3_000 for b in message.blocks)
    final = fake_slack.find_message("C_OPS", job.slack_message_ts)
    assert ":white_check_mark:" in final.text


def test_thread_posts_are_spaced_about_a_second_apart_per_channel(sqlite_world, client,
                                                                   fake_slack):
    job_id = sqlite_world.job()
    notifier = _notifier(client, sqlite_world.get(job_id))

    for burst in range(2):
        notifier.lines([(f"burst {burst} line {i}", "INFO") for i in range(1_000)])
        time.sleep(0.2)
    notifier.finish(_finished(sqlite_world, job_id), total_lines=2_000)
    assert notifier.join(30)

    posts = [c.at for c in fake_slack.calls_to("chat.postMessage")
             if c.params.get("thread_ts")]
    gaps = [b - a for a, b in zip(posts, posts[1:], strict=False)]
    assert len(posts) >= 2
    assert min(gaps) >= 0.9


def test_output_beyond_the_thread_budget_is_summarised_and_uploaded_as_a_file(
        sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    notifier = _notifier(client, job, limits=Limits(post_interval=0.1,
                                                    max_thread_bytes=20_000))
    lines = [f"{i:05d} " + "y" * 90 for i in range(2_000)]

    notifier.lines([(line, "INFO") for line in lines])
    notifier.finish(_finished(sqlite_world, job_id), total_lines=2_000,
                    full_log=lambda: "\n".join(lines) + "\n")
    assert notifier.join(20)

    [upload] = fake_slack.files
    assert upload["content"].decode().splitlines() == lines
    assert upload["thread_ts"] == job.slack_message_ts
    assert "more output lines are not shown here" in upload["comment"]
    posted = sum(len(b["text"]["text"]) for m in fake_slack.thread("C_OPS", job.slack_message_ts)
                 for b in m.blocks)
    assert posted <= 20_000 + 200  # the budget, plus the code fences


def test_slack_being_down_never_slows_the_producer(sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    fake_slack.latency = 0.5  # every call takes half a second
    notifier = _notifier(client, sqlite_world.get(job_id))

    t0 = time.monotonic()
    for i in range(20_000):
        notifier.lines([(f"line {i}", "INFO")])
        notifier.progress(RunProgress(tasks_done=i))
    elapsed = time.monotonic() - t0
    fake_slack.fail_channel("C_OPS", "channel_not_found")
    notifier.finish(_finished(sqlite_world, job_id), total_lines=20_000)

    assert elapsed < 2.0
    assert notifier.join(60)


def test_rate_limited_calls_are_retried_after_retry_after(sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    fake_slack.rate_limit(1, retry_after=1)
    notifier = _notifier(client, job)

    notifier.lines([("after the 429s", "INFO")])
    notifier.finish(_finished(sqlite_world, job_id), total_lines=1)
    assert notifier.join(20)

    assert len(fake_slack.calls_to("chat.update:429")
               + fake_slack.calls_to("chat.postMessage:429")) == 1
    thread = fake_slack.thread("C_OPS", job.slack_message_ts)
    assert "after the 429s" in thread[0].blocks[0]["text"]["text"]


def test_a_job_without_a_message_gets_one_in_the_jobs_channel_when_its_channel_refuses(
        sqlite_world, client, fake_slack):
    job_id = sqlite_world.job(slack_message=False, channel="C_PRIVATE")
    fake_slack.fail_channel("C_PRIVATE", "not_in_channel")
    posted: list[tuple[str, str]] = []
    notifier = _notifier(client, sqlite_world.get(job_id),
                         on_message_posted=lambda c, ts: posted.append((c, ts)))

    notifier.lines([("hello", "INFO")])
    notifier.finish(_finished(sqlite_world, job_id), total_lines=1)
    assert notifier.join(20)

    [(channel, ts)] = posted
    assert channel == "C_JOBS"
    assert fake_slack.thread("C_JOBS", ts)


def test_a_job_falls_back_to_the_requesters_dm_when_no_channel_works(sqlite_world, client,
                                                                    fake_slack):
    job_id = sqlite_world.job(slack_message=False, channel="C_PRIVATE")
    fake_slack.fail_channel("C_PRIVATE", "not_in_channel")
    fake_slack.fail_channel("C_JOBS", "not_in_channel")
    notifier = _notifier(client, sqlite_world.get(job_id))

    notifier.finish(_finished(sqlite_world, job_id), total_lines=0)
    assert notifier.join(20)

    assert notifier.channel == "D_U_ALICE"


def test_a_failed_job_posts_its_ticket_with_take_resolve_and_retry(sqlite_world, client,
                                                                  fake_slack):
    from core.tickets import open_incident
    from slackui.tickets import ticket_message

    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    with sqlite_world.factory.begin() as s:
        from db.models import Job

        failed = s.get(Job, sqlite_world.job_pk(job_id))
        failed.status = JobStatus.failed
        failed.error_message = "Task 'x' failed on local: boom"
        ticket = open_incident(s, failed)
        payload = ticket_message(ticket)
    ticket_posts: list[str] = []
    notifier = _notifier(client, job, on_ticket_posted=lambda c, ts: ticket_posts.append(ts))

    notifier.finish(sqlite_world.get(job_id), ticket=payload, total_lines=0)
    assert notifier.join(20)

    [post] = fake_slack.thread("C_OPS", job.slack_message_ts)
    actions = [e["action_id"] for b in post.blocks if b["type"] == "actions"
               for e in b["elements"]]
    assert ids.ACTION_TICKET_TAKE in actions and ids.ACTION_TICKET_RESOLVE in actions
    assert ids.ACTION_JOB_RETRY in actions
    assert ticket_posts == [post.ts]
    final = fake_slack.find_message("C_OPS", job.slack_message_ts)
    assert "boom" in final.text
    assert ids.ACTION_JOB_RETRY in str(final.blocks)


def test_the_ending_is_shown_at_once_and_a_big_backlog_goes_into_the_log_file(
        sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    notifier = _notifier(client, job)
    lines = [f"{i:05d} " + "z" * 60 for i in range(5_000)]
    notifier.lines([(line, "INFO") for line in lines])

    ended = _finished(sqlite_world, job_id)
    finished_at = time.monotonic()
    notifier.finish(ended, total_lines=5_000, full_log=lambda: "\n".join(lines) + "\n")
    assert notifier.join(20)

    final = [c for c in fake_slack.calls_to("chat.update")
             if ":white_check_mark:" in str(c.params.get("text"))]
    assert final and final[0].at - finished_at < 2.0  # not after ~30 s of posting
    posts = [m for m in fake_slack.thread("C_OPS", job.slack_message_ts)]
    assert len(posts) <= 3  # two output posts at most, then the summary with the file
    [upload] = fake_slack.files
    assert upload["content"].decode().splitlines() == lines
