"""An approval binds to the exact request (a digest of the playbook's hash, variables, target
and check mode): a re-synced playbook voids it, at the approval click and at the worker's
claim; and `PLAYBOT_PRODUCTION_APPROVERS` asks for several distinct admins."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.playbook_registry import sync_playbooks
from db.models import JobStatus, TicketStatus
from db.session import transaction
from slackui import ids
from tests.handlers.fixtures import ADMIN, BOT_TOKEN, OPERATOR, OTHER_ADMIN, PING_YML
from tests.handlers.harness import blocks_text
from workers.config import WorkerConfig
from workers.execute import execute_job


def request_production_run(slack):
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=OPERATOR)
    [job] = slack.jobs()
    [ticket] = slack.tickets()
    assert job.status == JobStatus.awaiting_approval
    return job, ticket


def click(slack, action_id, ticket, job, user):
    return slack.click(action_id, ticket.ticket_id, user=user,
                       channel=job.slack_channel_id, message_ts=job.slack_message_ts)


def resync_changed_playbook(slack, playbook_dir: Path) -> None:
    """Someone edits ping.yml and runs `playbot playbooks sync`: the new hash is accepted."""
    (playbook_dir / "ping.yml").write_text(PING_YML + "    - name: a new task\n"
                                           "      ansible.builtin.debug: {msg: new}\n")
    with transaction(slack.session_factory) as session:
        sync_playbooks(session, playbook_dir, check_syntax=False)


def worker_config(slack, tmp_path: Path) -> WorkerConfig:
    settings = slack.runtime.settings
    return WorkerConfig(database_url=settings.database_url, slack_token=BOT_TOKEN,
                        slack_api_url=settings.slack_api_url, playbook_dir=settings.playbook_dir,
                        runtime_dir=tmp_path / "runs", known_hosts_file=tmp_path / "known_hosts",
                        heartbeat_interval=0.5, log_flush_interval=0.05)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_playbook_resynced_before_the_approval_voids_the_request(slack, playbook_dir):
    job, ticket = request_production_run(slack)
    resync_changed_playbook(slack, playbook_dir)

    result = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    assert "void" in result.reply_text and "the playbook changed" in result.reply_text
    assert slack.queue.enqueued == []
    voided = slack.job(job.job_id)
    assert voided.status == JobStatus.cancelled
    assert voided.error_message == ("Approval void: the playbook changed since it was "
                                    "requested.")
    [closed] = slack.tickets()
    assert closed.status == TicketStatus.closed
    # the card is redrawn: no Approve button, the void reason shown
    shown = blocks_text(result.updated[-1].params["blocks"])
    assert result.updated[-1].params["ts"] == job.slack_message_ts
    assert "Approval void: the playbook changed" in shown
    assert ids.ACTION_APPROVAL_APPROVE not in str(result.updated[-1].params["blocks"])
    [void] = slack.audit("approval.void")
    assert void.details["when"] == "approval"
    assert slack.audit("approval.approve")[-1].details["outcome"] == "denied"


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_playbook_resynced_after_the_approval_voids_it_at_the_claim_and_nothing_runs(
        slack, playbook_dir, tmp_path):
    job, ticket = request_production_run(slack)
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)
    assert slack.job(job.job_id).status == JobStatus.pending
    resync_changed_playbook(slack, playbook_dir)
    before = len(slack.fake.calls)

    ended = execute_job(job.job_id, worker_config(slack, tmp_path))

    assert ended is None  # never claimed, never run
    voided = slack.job(job.job_id)
    assert voided.status == JobStatus.cancelled and voided.started_at is None
    assert voided.error_message == ("Approval void: the playbook changed since it was "
                                    "approved.")
    [void] = slack.audit("approval.void")
    assert void.details["when"] == "claim"
    # the run message (the former card) says so
    updates = [c for c in slack.fake.calls[before:] if c.method == "chat.update"]
    assert updates and updates[-1].params["ts"] == job.slack_message_ts
    assert "Approval void: the playbook changed" in blocks_text(updates[-1].params["blocks"])
    # `/job` shows it too
    details = slack.command(ids.CMD_JOB, job.job_id[:8], user=OPERATOR).reply_text
    assert "Approval void" in details


def test_an_unchanged_approved_request_runs_on_the_worker(slack, tmp_path):
    job, ticket = request_production_run(slack)
    click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    ended = execute_job(job.job_id, worker_config(slack, tmp_path))

    assert ended == JobStatus.success
    assert slack.audit("approval.void") == []


@pytest.fixture
def two_approvers(slack_settings):
    slack_settings["playbot_production_approvers"] = 2


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_two_approvers_each_admin_counts_once_and_the_second_releases_the_job(
        two_approvers, slack):
    job, ticket = request_production_run(slack)

    first = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    assert "needs 1 more admin" in first.reply_text
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval
    assert slack.queue.enqueued == []
    card = blocks_text(first.updated[-1].params["blocks"])
    assert "1 of 2 approvals: @bob" in card
    assert ids.ACTION_APPROVAL_APPROVE in str(first.updated[-1].params["blocks"])

    again = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)
    assert "already approved" in again.reply_text
    assert slack.job(job.job_id).status == JobStatus.awaiting_approval

    second = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, OTHER_ADMIN)

    released = slack.job(job.job_id)
    assert released.status == JobStatus.pending
    assert slack.queue.enqueued == [job.job_id]
    assert "is starting" in second.reply_text
    [decided] = slack.tickets()
    assert decided.status == TicketStatus.resolved
    assert decided.resolution_note == "Approved by @bob, @carol"
    assert [a["username"] for a in decided.approvals] == ["bob", "carol"]
    rows = slack.audit("approval.approve")
    assert [r.details["outcome"] for r in rows] == ["allowed", "denied", "allowed"]
    assert rows[0].details["approvals"] == 1


def test_with_two_approvers_the_requester_still_cannot_approve(two_approvers, slack):
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=ADMIN)
    [job] = slack.jobs()
    [ticket] = slack.tickets()

    mine = click(slack, ids.ACTION_APPROVAL_APPROVE, ticket, job, ADMIN)

    assert "another admin" in mine.reply_text
    assert slack.tickets()[0].approvals is None
