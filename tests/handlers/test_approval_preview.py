"""The approval card shows what the run will change: a production request of a check-safe
playbook first runs in check mode with diff on its target (its preview), and the card
carries the result — the tasks that would change on each host, a diff excerpt — with the
whole redacted output as a file in the card's thread."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from core.playbook_registry import sync_playbooks
from db.base import utcnow
from db.models import Job, JobStatus
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR
from tests.handlers.harness import blocks_text
from tests.handlers.test_approval_binding import click, worker_config
from workers import housekeeping
from workers.execute import execute_job


def configure_playbook(text: str) -> str:
    return f"""\
- hosts: all
  gather_facts: false
  tasks:
    - name: Deploy config
      ansible.builtin.copy:
        dest: "{text}"
        content: "listen 8080\\nworkers 4 <!here>\\n"
        mode: "0644"
    - name: Say hello
      ansible.builtin.debug:
        msg: nothing changes here
"""


@pytest.fixture
def check_safe_playbook(slack, playbook_dir: Path, tmp_path: Path) -> Path:
    """A check-safe `configure` playbook, synced as `playbot playbooks sync` does: its copy
    task writes a file (under --check --diff it only shows the diff)."""
    target = tmp_path / "app" / "app.conf"
    target.parent.mkdir()
    (playbook_dir / "configure.yml").write_text(configure_playbook(str(target)))
    (playbook_dir / "configure.playbot.yml").write_text(yaml.safe_dump(
        {"description": "Write the app's config", "check_safe": True}))
    with transaction(slack.session_factory) as session:
        sync_playbooks(session, playbook_dir, check_syntax=False)
    return target


def card_updates(slack, job, since: int) -> list:
    return [c for c in slack.fake.calls[since:]
            if c.method == "chat.update" and c.params.get("ts") == job.slack_message_ts]


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_the_approval_card_shows_what_the_check_safe_run_would_change_then_the_approval_runs_it(
        slack, check_safe_playbook, tmp_path):
    # when: an operator asks for a production run of the check-safe playbook
    launched = slack.command(ids.CMD_RUN_PLAYBOOK, "configure prod-local", user=OPERATOR)

    # then: the real job awaits approval, and its preview (check mode) is queued at once
    job, preview = slack.jobs()
    [ticket] = slack.tickets()
    assert job.status == JobStatus.awaiting_approval and not job.check_mode
    assert preview.status == JobStatus.pending and preview.check_mode
    assert preview.server_id == job.server_id and preview.run_id != job.run_id
    assert preview.active_fingerprint is None and preview.slack_message_ts is None
    assert ticket.job_id == job.id and ticket.preview_job_id == preview.id
    assert slack.queue.enqueued == [preview.job_id]
    [card] = [m for m in launched.posted if m.channel == job.slack_channel_id]
    assert "Preview (check mode) running" in blocks_text(card.blocks)

    # when: the worker runs the preview for real
    before = len(slack.fake.calls)
    ended = execute_job(preview.job_id, worker_config(slack, tmp_path))

    # then: nothing was changed, the card shows the changed task and the diff excerpt
    assert ended == JobStatus.success
    assert not check_safe_playbook.exists()
    [update, *_] = card_updates(slack, job, before)
    shown = blocks_text(update.params["blocks"])
    assert "would change: 1 task on *prod-local* — Deploy config" in shown
    assert "+listen 8080" in shown and "+workers 4 &lt;!here&gt;" in shown
    assert "<!here>" not in str(update.params["blocks"])  # playbook output is never markup
    assert ids.ACTION_APPROVAL_APPROVE in str(update.params["blocks"])
    # the preview posted no message of its own; its output is a file in the card's thread
    assert [c for c in slack.fake.calls[before:] if c.method == "chat.postMessage"] == []
    [upload] = slack.fake.files
    assert upload["thread_ts"] == job.slack_message_ts
    assert b"+listen 8080" in upload["content"] and b"TASK [Deploy config]" in upload["content"]
    assert len(slack.tickets()) == 1  # no incident ticket, no ticket of its own

    # when: an admin approves; the real run starts and changes the file
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)
    assert slack.job(job.job_id).status == JobStatus.pending
    assert execute_job(job.job_id, worker_config(slack, tmp_path)) == JobStatus.success
    assert check_safe_playbook.read_text() == "listen 8080\nworkers 4 <!here>\n"


def test_a_failed_preview_opens_no_incident_and_the_card_says_it_did_not_finish(
        slack, playbook_dir, tmp_path):
    (playbook_dir / "probe.yml").write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: Probe\n"
        "      ansible.builtin.fail:\n        msg: probe <!channel> failed\n")
    (playbook_dir / "probe.playbot.yml").write_text("check_safe: true\n")
    with transaction(slack.session_factory) as session:
        sync_playbooks(session, playbook_dir, check_syntax=False)
    slack.command(ids.CMD_RUN_PLAYBOOK, "probe prod-local", user=OPERATOR)
    job, preview = slack.jobs()
    before = len(slack.fake.calls)

    ended = execute_job(preview.job_id, worker_config(slack, tmp_path))

    assert ended == JobStatus.failed
    assert len(slack.tickets()) == 1  # the approval request only: no incident ticket
    [update, *_] = card_updates(slack, job, before)
    shown = blocks_text(update.params["blocks"])
    assert "*prod-local*: the preview did not finish" in shown
    assert "<!channel>" not in str(update.params["blocks"])
    assert ids.ACTION_APPROVAL_APPROVE in str(update.params["blocks"])  # still decidable


def test_a_check_run_of_a_check_safe_playbook_has_no_preview(slack, check_safe_playbook):
    slack.command(ids.CMD_RUN_PLAYBOOK, "configure prod-local --check", user=OPERATOR)

    [job] = slack.jobs()
    assert job.status == JobStatus.pending
    assert slack.tickets() == []


def test_a_production_run_of_a_playbook_not_check_safe_has_no_preview(slack):
    launched = slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=OPERATOR)

    [job] = slack.jobs()
    [ticket] = slack.tickets()
    assert ticket.preview_job_id is None and slack.queue.enqueued == []
    assert "Preview" not in blocks_text(launched.posted[0].blocks)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_preview_whose_worker_died_is_shown_ended_on_the_card(slack, check_safe_playbook,
                                                                tmp_path):
    # given: a production request whose preview was running when its worker died
    slack.command(ids.CMD_RUN_PLAYBOOK, "configure prod-local", user=OPERATOR)
    job, preview = slack.jobs()
    long_ago = utcnow() - timedelta(minutes=5)
    with transaction(slack.session_factory) as session:
        session.execute(update(Job).where(Job.id == preview.id).values(
            status=JobStatus.running, started_at=long_ago, heartbeat_at=long_ago,
            running_server_id=Job.server_id))
    before = len(slack.fake.calls)

    # when: the clock's reaper ends it
    assert housekeeping.reap(worker_config(slack, tmp_path)) == [preview.job_id]

    # then: the card no longer says the preview is running: it did not finish, and why;
    # the request can still be decided, and no incident ticket was opened for the preview
    [update_call, *_] = card_updates(slack, job, before)
    shown = blocks_text(update_call.params["blocks"])
    assert "Preview (check mode) running" not in shown
    assert "*prod-local*: the preview did not finish (worker lost" in shown
    assert ids.ACTION_APPROVAL_APPROVE in str(update_call.params["blocks"])
    assert len(slack.tickets()) == 1
