"""A job from claim to ending, for real: ansible-runner on localhost, MariaDB, FakeSlack."""

from __future__ import annotations

import threading
import time

from core.jobs import cancel
from db.models import JobStatus, LogLevel, Role, TicketPriority, User
from slackui import ids
from workers.execute import execute_job
from workers.notifier import Limits, drain


def _thread_text(fake, job) -> str:
    return "\n".join(b["text"]["text"] for m in fake.thread(job.slack_channel_id,
                                                           job.slack_message_ts)
                     for b in m.blocks if b.get("type") == "section")


def test_a_successful_job_stores_its_output_and_shows_the_recap(maria_world, config_for):
    world, fake = maria_world, maria_world.slack
    job_id = world.job("ok")

    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    job = world.get(job_id)
    assert ended == JobStatus.success == job.status
    assert job.started_at <= job.completed_at and job.error_message is None
    assert job.recap["hosts"]["local"]["changed"] == 1
    rows = world.logs(job_id)
    assert [r.line_number for r in rows] == list(range(1, len(rows) + 1))
    assert any('"msg": "hello from playbot"' in r.content for r in rows)
    message = fake.find_message("C_OPS", job.slack_message_ts)
    assert message.text.startswith(":white_check_mark: ok on local: succeeded")
    assert "changed 1" in str(message.blocks)
    assert "hello from playbot" in _thread_text(fake, job)
    assert world.tickets(job_id) == []


def test_a_failing_task_fails_the_job_with_an_exact_error_and_a_posted_ticket(maria_world,
                                                                            config_for):
    world, fake = maria_world, maria_world.slack
    job_id = world.job("fail")

    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    job = world.get(job_id)
    assert ended == JobStatus.failed
    assert job.error_message == (
        "Task 'Check disk space' failed on local: disk almost full: 97% used on /")
    [ticket] = world.tickets(job_id)
    assert ticket.priority == TicketPriority.medium
    assert ticket.slack_message_ts is not None  # posted, and remembered
    errors = [r.content for r in world.logs(job_id) if r.log_level == LogLevel.ERROR]
    assert any("FAILED!" in line for line in errors)
    [post] = [m for m in fake.thread("C_OPS", job.slack_message_ts)
              if m.ts == ticket.slack_message_ts]
    buttons = {e["action_id"] for b in post.blocks if b["type"] == "actions"
               for e in b["elements"]}
    assert {ids.ACTION_TICKET_TAKE, ids.ACTION_TICKET_RESOLVE, ids.ACTION_JOB_RETRY} <= buttons
    message = fake.find_message("C_OPS", job.slack_message_ts)
    assert "Check disk space" in message.text


def test_a_playbook_edited_after_registration_is_refused(maria_world, config_for, tmp_path):
    world = maria_world
    marker = tmp_path / "marker"
    job_id = world.job("ok", extra_vars={"marker": str(marker)})
    path = world.playbook_dir / "ok.yml"
    path.write_text(path.read_text() + "\n# edited\n")

    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    job = world.get(job_id)
    assert ended == JobStatus.failed
    assert job.error_message.startswith("Refused: Playbook `ok` changed on disk")
    assert "playbooks sync" in job.error_message
    assert not marker.exists()
    assert [r.content for r in world.logs(job_id)] == [job.error_message]


def test_five_thousand_lines_make_five_thousand_rows_and_few_slack_calls(maria_world,
                                                                         config_for):
    world, fake = maria_world, maria_world.slack
    job_id = world.job("chatty")
    calls_before = len(fake.calls)

    ended = execute_job(job_id, config_for(world), notifier_limits=Limits(post_interval=0.2))
    assert drain(30)

    assert ended == JobStatus.success
    rows = world.logs(job_id)
    assert len(rows) == 5_000
    assert [r.line_number for r in rows] == list(range(1, 5_001))
    assert rows[-1].content.startswith("local ")  # the recap line
    calls = fake.calls[calls_before:]
    assert len(calls) <= 15, [c.method for c in calls]


def test_cancelling_a_running_job_stops_it_within_seconds(maria_world, config_for, tmp_path):
    world = maria_world
    marker = tmp_path / "marker"
    job_id = world.job("slow", extra_vars={"marker": str(marker), "seconds": "60"})
    outcome: list[JobStatus | None] = []
    runner = threading.Thread(target=lambda: outcome.append(
        execute_job(job_id, config_for(world))))
    runner.start()
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)

    with world.factory.begin() as s:
        admin = User(username="root", role=Role.admin)
        s.add(admin)
        s.flush()
        cancel(s, admin, job_id)
    asked = time.monotonic()
    runner.join(30)
    assert drain(15)

    job = world.get(job_id)
    assert outcome == [JobStatus.cancelled] == [job.status]
    assert time.monotonic() - asked < 8
    assert job.completed_at is not None
    assert world.tickets(job_id) == []
    assert job.error_message == "Cancelled by @root"  # who stopped it, not "on request"
    message = world.slack.find_message("C_OPS", job.slack_message_ts)
    assert ids.ACTION_JOB_RETRY in str(message.blocks)
    assert "*Cancelled*\\nCancelled by @root" in str(message.blocks)


def test_secret_values_never_reach_the_logs_or_slack(maria_world, config_for, monkeypatch):
    world, fake = maria_world, maria_world.slack
    monkeypatch.setenv("PLAYBOT_VAR_DB_PASSWORD", "Tr0ub4dor&3")
    job_id = world.job("secret", variables={
        "db_password": {"type": "string", "secret": True, "required": True}})

    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    assert ended == JobStatus.success
    text = "\n".join(r.content for r in world.logs(job_id))
    assert "Tr0ub4dor" not in text and "connecting with password ********" in text
    assert "the password is" not in text  # Ansible hid the no_log task's result
    assert "Tr0ub4dor" not in str([c.params for c in fake.calls])


DEPLOY_KEY_LINES = ("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg", "c2VjcmV0LXNlY3JldC1zZWNyZXQtMDAxMjM0",
                    'with "quotes" & a \\backslash')
VAULTED_KEY_LINE = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtz"


def test_a_check_run_with_diff_shows_no_multi_line_or_escaped_secret(maria_world, config_for,
                                                                      monkeypatch):
    # given: a multi-line secret variable, printed by debug (JSON-escaped, on one line) and
    # rendered into a file whose --diff prints it line by line; and a private key from the
    # playbook's own vars (as a vault value would be), rendered the same way
    world, fake = maria_world, maria_world.slack
    monkeypatch.setenv("PLAYBOT_VAR_DEPLOY_KEY", "\n".join(DEPLOY_KEY_LINES) + "\n")
    job_id = world.job("leaky", check_mode=True, variables={
        "deploy_key": {"type": "string", "secret": True, "required": True}})

    # when: it runs for real, in check mode with --diff
    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    # then: the diff is there, and no piece of either secret in the logs or in Slack
    assert ended == JobStatus.success
    text = "\n".join(r.content for r in world.logs(job_id))
    assert "+++ after" in text and "key is ********" in text
    slack = str([c.params for c in fake.calls])
    for piece in (*DEPLOY_KEY_LINES, VAULTED_KEY_LINE, "BWQVVMVEVES0VZ"):
        assert piece not in text, piece
        assert piece not in slack, piece
    assert "BEGIN OPENSSH PRIVATE KEY" not in text


HOSTILE = "<!channel> <@U123> <https://evil.example|click>"


def test_a_failed_task_echoing_a_hostile_variable_reaches_slack_escaped(maria_world,
                                                                        config_for):
    # given: a job whose failing task's message echoes what the user typed
    world, fake = maria_world, maria_world.slack
    job_id = world.job("fail_echo", extra_vars={"note": HOSTILE})

    # when: it runs for real and fails
    ended = execute_job(job_id, config_for(world))
    assert drain(15)

    # then: the job keeps the message as Ansible said it, and Slack gets it escaped only:
    # the job message's text fallback and blocks, the thread, the ticket
    assert ended == JobStatus.failed
    assert HOSTILE in world.get(job_id).error_message
    sent = [str(c.params.get("text") or "") + str(c.params.get("blocks") or "")
            for c in fake.calls if c.method.startswith("chat.")]
    everything = "\n".join(sent)
    assert "bad note: &lt;!channel&gt; &lt;@U123&gt;" in everything
    for token in ("<!channel>", "<@U123>", "<https://evil"):
        assert token not in everything, token


def test_a_missing_required_secret_refuses_the_job_with_advice(maria_world, config_for,
                                                              monkeypatch):
    world = maria_world
    monkeypatch.delenv("PLAYBOT_VAR_DB_PASSWORD", raising=False)
    job_id = world.job("secret", variables={
        "db_password": {"type": "string", "secret": True, "required": True}})

    execute_job(job_id, config_for(world))
    assert drain(15)

    assert "PLAYBOT_VAR_DB_PASSWORD is not set" in world.get(job_id).error_message


def test_a_job_whose_server_is_busy_waits_and_says_so(maria_world, config_for):
    world, fake = maria_world, maria_world.slack
    busy = world.job("ok", slack_message=False)
    world.set(busy, status=JobStatus.running, running_server_id=world.server("local"))
    waiting = world.job("ok")
    deferred: list[tuple[str, float]] = []

    ended = execute_job(waiting, config_for(world), defer=lambda j, d: deferred.append((j, d)))
    deadline = time.monotonic() + 5
    job = world.get(waiting)
    while time.monotonic() < deadline and "waiting for" not in (
            fake.find_message("C_OPS", job.slack_message_ts).text):
        time.sleep(0.05)

    assert ended is None and deferred == [(waiting, 0.5)]
    assert world.get(waiting).status == JobStatus.pending
    assert "waiting for local" in fake.find_message("C_OPS", job.slack_message_ts).text


def test_a_run_on_sqlite_works_the_same(sqlite_world, config_for):
    world = sqlite_world
    job_id = world.job("ok")

    ended = execute_job(job_id, config_for(world), notifier_limits=Limits(post_interval=0.2))
    assert drain(15)

    assert ended == JobStatus.success
    assert world.logs(job_id)[0].line_number == 1


def test_a_job_whose_first_post_failed_gets_its_message_from_the_worker(sqlite_world,
                                                                        config_for):
    world, fake = sqlite_world, sqlite_world.slack
    job_id = world.job("ok", slack_message=False, channel="C_PRIVATE")
    fake.fail_channel("C_PRIVATE", "not_in_channel")

    execute_job(job_id, config_for(world), notifier_limits=Limits(post_interval=0.2))
    assert drain(15)

    job = world.get(job_id)
    assert job.slack_channel_id == "C_JOBS" and job.slack_message_ts
    message = fake.find_message("C_JOBS", job.slack_message_ts)
    assert message.text.startswith(":white_check_mark:")
    assert fake.thread("C_JOBS", job.slack_message_ts)
