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
