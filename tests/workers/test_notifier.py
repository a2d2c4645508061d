"""workers.notifier against FakeSlack: coalesced thread posts within Slack's limits, a file
when output overflows, and Slack trouble never slowing the caller."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient

from core.progress import RunProgress
from db.models import JobStatus
from slackui import ids
from workers.notifier import ChannelPacer, JobNotifier, Limits, RunNotifier, make_client


@pytest.fixture
def client(fake_slack) -> WebClient:
    return make_client("xoxb-test", fake_slack.api_url)


def _notifier(world, client, job, **kwargs) -> JobNotifier:
    kwargs.setdefault("pacer", ChannelPacer())
    kwargs.setdefault("session_factory", world.factory)
    return JobNotifier(client, job, jobs_channel="C_JOBS", **kwargs)


def _finished(sqlite_world, job_id, status=JobStatus.success, **values):
    sqlite_world.set(job_id, status=status, **values)
    return sqlite_world.get(job_id)


def test_output_goes_to_the_thread_in_few_coalesced_posts_within_size_limits(
        sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    job = sqlite_world.get(job_id)
    notifier = _notifier(sqlite_world, client, job, limits=Limits(
        post_interval=0.3, update_interval=0.3, max_thread_bytes=200_000))

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
    notifier = _notifier(sqlite_world, client, sqlite_world.get(job_id),
                         limits=Limits(max_thread_bytes=200_000))

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
    notifier = _notifier(sqlite_world, client, job, limits=Limits(post_interval=0.1,
                                                    max_thread_bytes=20_000))
    lines = [f"{i:05d} " + "y" * 90 for i in range(2_000)]

    notifier.lines([(line, "INFO") for line in lines])
    notifier.finish(_finished(sqlite_world, job_id), total_lines=2_000,
                    full_log=lambda: "\n".join(lines) + "\n")
    assert notifier.join(20)

    [upload] = fake_slack.files
    assert upload["content"].decode().splitlines() == lines
    assert upload["thread_ts"] == job.slack_message_ts
    assert "more output lines are not in this thread" in upload["comment"]
    assert f"attached as {upload['filename']}" in upload["comment"]
    assert "_" not in upload["comment"].split(" attached as ")[0]  # plain words, no markup
    posted = sum(len(b["text"]["text"]) for m in fake_slack.thread("C_OPS", job.slack_message_ts)
                 for b in m.blocks)
    assert posted <= 20_000 + 200  # the budget, plus the code fences


def test_slack_being_down_never_slows_the_producer(sqlite_world, client, fake_slack):
    job_id = sqlite_world.job()
    fake_slack.latency = 0.5  # every call takes half a second
    notifier = _notifier(sqlite_world, client, sqlite_world.get(job_id))

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
    notifier = _notifier(sqlite_world, client, job)

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
    notifier = _notifier(sqlite_world, client, sqlite_world.get(job_id),
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
    notifier = _notifier(sqlite_world, client, sqlite_world.get(job_id))

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
    notifier = _notifier(sqlite_world, client, job, on_ticket_posted=lambda c, ts: ticket_posts.append(ts))

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
    notifier = _notifier(sqlite_world, client, job)
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


# runs of several hosts ---------------------------------------------------------------------


def _run(world, hosts, *, playbook="ok"):
    """Jobs of one run on `hosts`, sharing one channel message like a launch makes them."""
    from slack_sdk import WebClient
    from sqlalchemy import select

    from db.models import Job, Playbook, Server

    world.playbook(playbook)
    for host in hosts:
        world.server(host)
    ts = WebClient(token="xoxb-test", base_url=world.slack.api_url).chat_postMessage(
        channel="C_OPS", text="launching")["ts"]
    with world.factory.begin() as s:
        book = s.scalar(select(Playbook).where(Playbook.name == playbook))
        servers = s.scalars(select(Server).where(Server.hostname.in_(hosts))
                            .order_by(Server.id)).all()
        run_id = "run-" + ts.replace(".", "")
        jobs = [Job(playbook_id=book.id, server_id=server.id, user_id=world.user(),
                    status=JobStatus.running, run_id=run_id, slack_channel_id="C_OPS",
                    slack_message_ts=ts, extra_vars={}) for server in servers]
        s.add_all(jobs)
        s.flush()
        ids_ = [job.job_id for job in jobs]
    return ids_, ts


def _end(world, job_id, status, error=None):
    from db.base import utcnow

    world.set(job_id, status=status, error_message=error, completed_at=utcnow(),
              started_at=utcnow())
    return world.get(job_id)


def test_a_runs_output_lines_are_marked_with_their_host_and_headers_are_not(
        sqlite_world, client, fake_slack):
    # given a run on two hosts
    job_ids, ts = _run(sqlite_world, ["web-01", "web-02"])
    notifier = RunNotifier(client, session_factory=sqlite_world.factory, jobs=[sqlite_world.get(j) for j in job_ids],
                           pacer=ChannelPacer())
    # when
    notifier.lines([("TASK [ping] ***", "INFO")])
    notifier.lines([("ok: [web-01]", "INFO")], host="web-01")
    notifier.lines([("fatal: [web-02]: FAILED!", "ERROR")], host="web-02")
    notifier.finish([_end(sqlite_world, job_ids[0], JobStatus.success),
                     _end(sqlite_world, job_ids[1], JobStatus.failed, "Task 'ping' failed")])
    assert notifier.join(20)
    # then
    shown = [line for m in fake_slack.thread("C_OPS", ts) for b in m.blocks
             for line in b["text"]["text"].strip("`\n").split("\n")]
    assert shown == ["TASK [ping] ***", "web-01 │ ok: [web-01]",
                     "web-02 │ fatal: [web-02]: FAILED!"]
    final = fake_slack.find_message("C_OPS", ts)
    assert "failed on 1 of 2" in str(final.blocks)
    assert "`web-01` ok" in str(final.blocks) and "`web-02` failed" in str(final.blocks)
    assert ids.ACTION_RUN_RETRY_FAILED in str(final.blocks)


def test_a_run_of_one_host_shows_its_lines_unmarked(sqlite_world, client, fake_slack):
    [job_id], ts = _run(sqlite_world, ["web-01"])
    notifier = RunNotifier(client, session_factory=sqlite_world.factory, jobs=[sqlite_world.get(job_id)], pacer=ChannelPacer())

    notifier.lines([("ok: [web-01]", "INFO")], host="web-01")
    notifier.finish([_end(sqlite_world, job_id, JobStatus.success)])
    assert notifier.join(20)

    [post] = fake_slack.thread("C_OPS", ts)
    assert post.blocks[0]["text"]["text"] == "```\nok: [web-01]\n```"


def test_a_run_with_failed_hosts_posts_one_failure_message_with_every_ticket(
        sqlite_world, client, fake_slack):
    from sqlalchemy import select

    from core.tickets import open_incident
    from db.models import Job

    # given a run of three hosts of which two failed, each with its ticket
    job_ids, ts = _run(sqlite_world, ["web-01", "web-02", "web-03"])
    notifier = RunNotifier(client, session_factory=sqlite_world.factory, jobs=[sqlite_world.get(j) for j in job_ids],
                           pacer=ChannelPacer(),
                           on_tickets_posted=lambda c, t: posted.append((c, t)))
    posted: list[tuple[str, str]] = []
    ended = [_end(sqlite_world, job_ids[0], JobStatus.failed, "Task 'x' failed: boom"),
             _end(sqlite_world, job_ids[1], JobStatus.failed, "unreachable: no route"),
             _end(sqlite_world, job_ids[2], JobStatus.success)]
    with sqlite_world.factory.begin() as s:
        tickets = [open_incident(s, s.scalars(select(Job).where(Job.job_id == j)).unique()
                                 .one()) for j in job_ids[:2]]
        for ticket in tickets:
            _ = (ticket.job.playbook, ticket.job.server, ticket.assignee)
        # when
        notifier.finish(ended, tickets=tickets)
    assert notifier.join(20)
    # then one message in the thread holds both tickets, each with its buttons
    [post] = fake_slack.thread("C_OPS", ts)
    takes = [e["value"] for b in post.blocks if b["type"] == "actions" for e in b["elements"]
             if e["action_id"] == ids.ACTION_TICKET_TAKE]
    assert sorted(takes) == sorted(t.ticket_id for t in tickets)
    assert "2 hosts failed" in str(post.blocks)
    assert posted == [("C_OPS", post.ts)]
    final = str(fake_slack.find_message("C_OPS", ts).blocks)
    assert "unreachable 1" in final and "failed 1" in final and "ok 1" in final


def test_slack_calls_for_a_fifty_host_run_are_bounded_by_its_duration(
        sqlite_world, client, fake_slack):
    from sqlalchemy import select

    from core.tickets import open_incident
    from db.models import Job

    # given a run of 50 hosts, chatty for about 3 seconds
    hosts = [f"node-{i:02d}" for i in range(50)]
    job_ids, ts = _run(sqlite_world, hosts)
    start = len(fake_slack.calls)
    notifier = RunNotifier(client, session_factory=sqlite_world.factory, jobs=[sqlite_world.get(j) for j in job_ids],
                           pacer=ChannelPacer(), limits=Limits(update_interval=1.0))
    began = time.monotonic()
    progress = RunProgress()
    for step in range(30):
        notifier.lines([("TASK [step] ***", "INFO")])
        for host in hosts:
            progress.count(host, "ok")
            notifier.lines([(f"ok: [{host}] step {step}", "INFO")], host=host)
        progress.tasks_done = step + 1
        notifier.progress(progress.copy())
        time.sleep(0.1)
    # when ten hosts fail and the others succeed
    ended = [_end(sqlite_world, j, JobStatus.failed if i < 10 else JobStatus.success,
                  "Task 'step' failed: boom" if i < 10 else None)
             for i, j in enumerate(job_ids)]
    with sqlite_world.factory.begin() as s:
        tickets = [open_incident(s, s.scalars(select(Job).where(Job.job_id == j)).unique()
                                 .one()) for j in job_ids[:10]]
        for ticket in tickets:
            _ = (ticket.job.playbook, ticket.job.server, ticket.assignee)
        notifier.finish(ended, tickets=tickets, total_lines=30 * 51,
                        full_log=lambda: "log\n")
    assert notifier.join(30)
    seconds = time.monotonic() - began
    # then: no message per host; updates and posts paced by time
    calls = fake_slack.calls[start:]
    updates = [c for c in calls if c.method == "chat.update"]
    posts = [c for c in calls if c.method == "chat.postMessage"]
    assert all(c.params.get("thread_ts") == ts for c in posts)  # nothing new in the channel
    assert len(updates) <= seconds / 1.0 + 2
    assert len(posts) <= seconds / 1.0 + 3  # paced output, one failure message
    failure = [c for c in posts if "tickets opened" in str(c.params.get("text"))]
    assert len(failure) == 1
    final = fake_slack.find_message("C_OPS", ts)
    assert len(final.blocks) <= 50 and "more ok" in str(final.blocks)
