"""slackui.job_message: the job's channel message at each stage of its life."""

from __future__ import annotations

from datetime import timedelta

from core.progress import RunProgress
from db.base import utcnow
from db.models import Environment, Job, JobStatus, Playbook, Server, User
from slackui import ids
from slackui.job_message import job_message


def _job(status: JobStatus, **values) -> Job:
    job = Job(job_id="0123456789abcdef-job", status=status, check_mode=False,
              created_at=utcnow() - timedelta(minutes=2), cancel_requested=False,
              extra_vars={}, **values)
    job.playbook = Playbook(name="deploy", file_path="deploy.yml", file_hash="0" * 64)
    job.server = Server(hostname="web-01", environment=Environment.production)
    job.user = User(username="alice", slack_user_id="U_ALICE")
    return job


def _buttons(blocks) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_running_job_shows_tasks_done_counters_per_host_and_cancel():
    progress = RunProgress(tasks_done=3, current_task="Restart <app>")
    progress.count("web-01", "ok", 3)
    progress.count("web-01", "changed")

    text, blocks = job_message(_job(JobStatus.running, started_at=utcnow()), progress)

    body = str(blocks)
    assert text.startswith(":arrows_counterclockwise: deploy on web-01: running")
    assert "*Tasks done:* 3" in body and "Restart &lt;app&gt;" in body
    assert "ok 3 · changed 1 · failed 0 · unreachable 0" in body
    assert "<@U_ALICE>" in body and "production" in body
    assert _buttons(blocks) == [ids.ACTION_JOB_CANCEL]


def test_a_cancel_drawn_without_the_workers_counters_shows_none_rather_than_zero():
    # the Slack app redraws at once after a Cancel click: it has no live counters
    job = _job(JobStatus.running, started_at=utcnow())
    job.cancel_requested = True

    _, blocks = job_message(job, None)

    body = str(blocks)
    assert "*Cancelling:*" in body and "stops at the next task" in body
    assert "Tasks done" not in body  # no "0" that the worker's next update contradicts


def test_a_failed_job_shows_the_error_the_recap_and_retry():
    job = _job(JobStatus.failed, started_at=utcnow() - timedelta(seconds=75),
               completed_at=utcnow(), error_message="Task 'Check' failed on web-01: full",
               recap={"hosts": {"web-01": {"ok": 2, "failed": 1}}, "tasks": 3})

    text, blocks = job_message(job)

    assert text == ":x: deploy on web-01: failed — Task 'Check' failed on web-01: full"
    body = str(blocks)
    assert "took 1m 15s" in body and "failed 1" in body
    assert _buttons(blocks) == [ids.ACTION_JOB_RETRY]


def test_a_pending_job_waiting_for_its_server_says_so():
    text, blocks = job_message(_job(JobStatus.pending), waiting_for="web-01")

    assert "waiting for web-01" in text
    assert "Waiting for *web-01*" in str(blocks)
    assert _buttons(blocks) == [ids.ACTION_JOB_CANCEL]


def test_a_succeeded_check_mode_job_has_no_buttons_and_says_check_mode():
    job = _job(JobStatus.success, started_at=utcnow(), completed_at=utcnow(),
               recap={"hosts": {"web-01": {"ok": 1}}, "tasks": 1})
    job.check_mode = True

    text, blocks = job_message(job)

    assert "(check mode)" in text and "_check mode_" in str(blocks)
    assert _buttons(blocks) == []


# runs of several servers -------------------------------------------------------------------


def _run(*specs) -> list[Job]:
    """Jobs of one run: (hostname, status, error) each."""
    jobs = []
    for i, (host, status, error) in enumerate(specs):
        job = _job(status, error_message=error)
        job.job_id = f"{i:08d}-job"
        job.run_id = "abcdef12-run"
        job.server = Server(hostname=host, environment=Environment.staging)
        jobs.append(job)
    return jobs


def test_a_run_of_one_is_drawn_exactly_as_its_job():
    from slackui.job_message import run_message

    job = _job(JobStatus.pending)

    assert run_message([job], waiting_for=["web-01"]) == job_message(job, waiting_for="web-01")


def test_a_run_message_has_a_headline_with_counts_and_a_host_table_trouble_first():
    from slackui.job_message import run_message

    jobs = _run(("web-03", JobStatus.success, None), ("web-01", JobStatus.failed, "Task x: boom"),
                ("web-02", JobStatus.failed, "unreachable: ssh: no route"))

    text, blocks = run_message(jobs)

    assert text.startswith(":x: deploy on 3 servers: failed on 2 of 3")
    body = str(blocks)
    assert "ok 1" in body and "failed 1" in body and "unreachable 1" in body
    assert "Run `abcdef12`" in body
    table = blocks[-2]["text"]["text"].splitlines()
    assert [line.split("`")[1] for line in table] == ["web-01", "web-02", "web-03"]
    assert "boom" in table[0] and "no route" in table[1]
    assert _buttons(blocks) == [ids.ACTION_RUN_RETRY_FAILED]


def test_a_big_run_fits_slacks_limits_and_summarises_the_rest():
    from slackui.job_message import MAX_RUN_HOSTS, run_message

    jobs = _run(*[(f"node-{i:03d}", JobStatus.failed if i % 10 == 0 else JobStatus.success,
                   "x" * 500 if i % 10 == 0 else None) for i in range(200)])

    text, blocks = run_message(jobs)

    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    body = str(blocks)
    assert body.count("`node-") == MAX_RUN_HOSTS
    assert f"…and {200 - MAX_RUN_HOSTS} more ok" in body  # the 20 failed hosts are all shown


def test_cancelling_a_running_run_asks_to_confirm_that_it_stops_every_server():
    from slackui.job_message import run_message

    jobs = _run(("web-01", JobStatus.running, None), ("web-02", JobStatus.running, None))

    _, blocks = run_message(jobs)

    [button] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == ids.ACTION_RUN_CANCEL and button["value"] == "abcdef12-run"
    confirm = button["confirm"]["text"]["text"]
    assert "stops the whole run on 2 servers" in confirm and "web-01, web-02" in confirm
    assert len(confirm) <= 300


def test_a_run_waiting_for_approval_of_its_production_server_says_so():
    from slackui.job_message import run_message

    jobs = _run(("web-01", JobStatus.pending, None), ("db-01", JobStatus.awaiting_approval, None))

    _, blocks = run_message(jobs)

    assert "Waiting for an admin to approve *db-01*" in str(blocks)
