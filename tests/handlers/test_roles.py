"""Every command for every role: allowed or denied as product.md's role table says, and
exactly one audit row each time, with the outcome."""

from __future__ import annotations

import pytest

from db.models import JobStatus
from slackui import ids
from tests.handlers.fixtures import ADMIN, OPERATOR, VIEWER
from tests.handlers.test_jobs import add_job
from tests.handlers.test_tickets import incident

ALLOWED, DENIED = "allowed", "denied"


def cases(job_id: str) -> list[tuple[str, str, str, dict]]:
    """(command, text, audit action, expected outcome per role); "*" is filled per test."""
    everyone = {VIEWER: ALLOWED, OPERATOR: ALLOWED, ADMIN: ALLOWED}
    operators = {VIEWER: DENIED, OPERATOR: ALLOWED, ADMIN: ALLOWED}
    admins = {VIEWER: DENIED, OPERATOR: DENIED, ADMIN: ALLOWED}
    return [
        (ids.CMD_RUN_PLAYBOOK, "ping local --check", "job.launch", operators),
        (ids.CMD_JOBS, "", "jobs.list", everyone),
        (ids.CMD_JOBS, "stats", "jobs.stats", everyone),
        (ids.CMD_JOBS, "mine", "jobs.history", everyone),
        (ids.CMD_JOB, job_id[:8], "job.show", everyone),
        (ids.CMD_CANCEL, "*", "job.cancel", operators),
        (ids.CMD_TICKETS, "", "tickets.list", everyone),
        (ids.CMD_TICKETS, "show *", "ticket.show", everyone),
        (ids.CMD_TICKETS, "take *", "ticket.take", operators),
        (ids.CMD_SERVERS, "env:production", "servers.list", everyone),
        (ids.CMD_PLAYBOOKS, "show deploy", "playbook.show", everyone),
        (ids.CMD_AUDIT, f"job {job_id[:8]}", "audit.view", admins),
        (ids.CMD_PLAYBOT, "help", "help", everyone),
    ]


@pytest.mark.parametrize("user", [VIEWER, OPERATOR, ADMIN])
def test_each_command_is_allowed_or_denied_by_role_and_audited_once(slack, user):
    job_id = add_job(slack, user=OPERATOR)
    for command, text, action, expected in cases(job_id):
        if command == ids.CMD_CANCEL:  # the caller's own pending job
            text = add_job(slack, user=user, status=JobStatus.pending)
        elif "*" in text:  # a fresh incident ticket
            text = text.replace("*", incident(slack)[:8])
        before = len(slack.audit())

        result = slack.command(command, text, user=user)

        assert result.status == 200
        rows = slack.audit()[before:]
        caller_rows = [r for r in rows if r.user_id == slack.user(user).id]
        assert [r.action for r in caller_rows] == [action], (command, text)
        assert caller_rows[0].details["outcome"] == expected[user], (command, text, user)
        assert caller_rows[0].user_agent and caller_rows[0].ip_address
        if expected[user] == DENIED:
            assert "role" in result.reply_text or "admin" in result.reply_text
