"""Runs of several servers from Slack: one message and one queue message per launch, counts
and hosts in it, cancel that says what it stops, Retry failed hosts, `group:` targets,
approval of a mixed run, and the one failure message of a run — through the real app."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from sqlalchemy import select, update

from bot.fake_slack import FakeSlack
from core import tickets as core_tickets
from db.base import utcnow
from db.models import Job, JobStatus, Server, ServerGroup
from db.session import transaction
from slackui import ids
from slackui.tickets import failure_message
from tests.handlers.fixtures import ADMIN, OPERATOR
from tests.handlers.harness import BOT_TOKEN, blocks_text

RUN = ids.CMD_RUN_PLAYBOOK


def set_jobs(slack, statuses, **values):
    """Give the jobs these statuses by hostname (as the worker would)."""
    with transaction(slack.session_factory) as session:
        for job in session.scalars(select(Job)).unique():
            status = statuses.get(job.server.hostname)
            if status is None:
                continue
            job.status = status
            job.started_at = utcnow()
            if status.is_final:
                job.completed_at = utcnow()
            if status == JobStatus.failed:
                job.error_message = f"Task 'ping' failed on {job.server.hostname}: boom"
            for key, value in values.items():
                setattr(job, key, value)


def buttons(blocks):
    return {e["action_id"]: e for b in blocks if b.get("type") == "actions"
            for e in b["elements"]}


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_tag_launch_on_several_servers_posts_one_message_and_enqueues_one_message(slack):
    # when
    result = slack.command(RUN, "ping tag:web", user=OPERATOR)

    # then: one run, one message showing its counts and hosts, one queue message
    jobs = slack.jobs()
    assert len(jobs) == 2 and len({j.run_id for j in jobs}) == 1
    [posted] = result.posted
    text = blocks_text(posted.blocks)
    assert "on *2 servers*" in text and "pending 2" in text
    assert "`local`" in text and "`stage-01`" in text
    assert {(j.slack_channel_id, j.slack_message_ts) for j in jobs} == {
        ("C_OPS", jobs[0].slack_message_ts)}
    assert slack.queue.enqueued == [jobs[0].job_id]
    assert {j.dramatiq_message_id for j in jobs} == {"msg-1"}
    assert set(buttons(posted.blocks)) == {ids.ACTION_RUN_CANCEL}


def test_cancelling_a_running_job_of_a_run_says_it_stops_the_whole_run(slack):
    # given a run on two servers, running
    launch = slack.command(RUN, "ping tag:web", user=OPERATOR)
    [posted] = launch.posted
    confirm = buttons(posted.blocks)[ids.ACTION_RUN_CANCEL]["confirm"]["text"]["text"]
    assert "none of them has started" in confirm and "local, stage-01" in confirm
    set_jobs(slack, {"local": JobStatus.running, "stage-01": JobStatus.running})
    local = next(j for j in slack.jobs() if j.server.hostname == "local")

    # when the operator cancels one job of it
    result = slack.command(ids.CMD_CANCEL, local.job_id[:8], user=OPERATOR)

    # then the answer says what stops, and every job of the run is asked to stop
    assert "Stopping the whole run" in result.reply_text
    assert "2 servers (local, stage-01)" in result.reply_text
    assert all(j.cancel_requested for j in slack.jobs())
    [redraw] = result.updated
    assert redraw.params["ts"] == local.slack_message_ts
    assert "cancelling" in str(redraw.params["blocks"])
    assert len(slack.audit("job.cancel")) == 2


def test_the_run_messages_cancel_button_cancels_every_server_of_a_pending_run(slack):
    launch = slack.command(RUN, "ping tag:web", user=OPERATOR)
    run_id = slack.jobs()[0].run_id

    result = slack.click(ids.ACTION_RUN_CANCEL, run_id, user=OPERATOR,
                         message_ts=launch.posted and slack.jobs()[0].slack_message_ts)

    assert {j.status for j in slack.jobs()} == {JobStatus.cancelled}
    assert "Cancelling run" in result.reply_text and "local, stage-01" in result.reply_text
    assert "cancelled 2" in str(result.updated[-1].params["blocks"])


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_retry_failed_hosts_launches_only_the_failed_servers_once(slack):
    # given a finished run: local failed, stage-01 succeeded
    slack.command(RUN, "ping tag:web", user=OPERATOR)
    set_jobs(slack, {"local": JobStatus.failed, "stage-01": JobStatus.success})
    [failed, ok] = sorted(slack.jobs(), key=lambda j: j.server.hostname)
    before = len(slack.queue.enqueued)

    # when the operator clicks Retry failed hosts, twice
    first = slack.click(ids.ACTION_RUN_RETRY_FAILED, failed.run_id, user=OPERATOR)
    again = slack.click(ids.ACTION_RUN_RETRY_FAILED, failed.run_id, user=OPERATOR)
    # and types the command too
    typed = slack.command(RUN, f"--retry-failed {ok.job_id[:8]}", user=OPERATOR)

    # then one new run on the failed server only
    new = [j for j in slack.jobs() if j.id not in (failed.id, ok.id)]
    [retry] = new
    assert retry.server.hostname == "local" and retry.retry_of_id == failed.id
    assert retry.run_id != failed.run_id
    assert len(first.posted) == 1
    assert slack.queue.enqueued[before:] == [retry.job_id]
    assert "already" in again.reply_text and "already" in typed.reply_text


def test_retry_failed_hosts_of_a_run_still_in_progress_is_refused(slack):
    slack.command(RUN, "ping tag:web", user=OPERATOR)

    result = slack.command(RUN, f"--retry-failed {slack.jobs()[0].run_id[:8]}", user=OPERATOR)

    assert "still in progress" in result.reply_text
    assert len(slack.jobs()) == 2


def _group(slack, name, hostnames):
    with transaction(slack.session_factory) as session:
        group = ServerGroup(name=name, variables={})
        group.servers = list(session.scalars(select(Server)
                                             .where(Server.hostname.in_(hostnames))))
        session.add(group)


def test_a_group_target_runs_on_the_groups_servers_and_a_typo_gets_suggestions(slack):
    _group(slack, "webservers", ["local", "stage-01"])

    typo = slack.command(RUN, "ping group:webserver", user=OPERATOR)
    result = slack.command(RUN, "ping group:webservers", user=OPERATOR)
    listing = slack.command(ids.CMD_SERVERS, "group:webservers", user=OPERATOR)

    assert "group:webservers" in typo.reply_text
    assert sorted(j.server.hostname for j in slack.jobs()) == ["local", "stage-01"]
    assert len(result.posted) == 1
    assert "local" in listing.reply_text and "stage-01" in listing.reply_text
    assert "prod-local" not in listing.reply_text


def _mixed_run(slack):
    """A run on local, stage-01 and prod-local (production): one approval card."""
    with transaction(slack.session_factory) as session:
        session.execute(update(Server).where(Server.hostname == "prod-local")
                        .values(tags=["prod", "web"]))
    return slack.command(RUN, "ping tag:web", user=OPERATOR)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_mixed_run_waits_as_one_approval_card_and_one_approval_starts_it(slack):
    # when an operator launches on production and non-production servers
    launch = _mixed_run(slack)

    # then one card asks for the production server (the admins are told by DM); nothing is
    # queued yet
    [card] = [m for m in launch.posted if not str(m.channel).startswith("D_")]
    text = blocks_text(card.blocks)
    assert "Approval needed" in text and "*prod-local*" in text and "*local*" in text
    assert slack.queue.enqueued == []
    assert {j.status for j in slack.jobs()} == {JobStatus.pending, JobStatus.awaiting_approval}
    [ticket] = slack.tickets()

    # when an admin approves
    result = slack.click(ids.ACTION_APPROVAL_APPROVE, ticket.ticket_id, user=ADMIN,
                         message_ts=card.ts or slack.jobs()[0].slack_message_ts)

    # then the whole run starts as one queue message, and the card is the run message now
    jobs = slack.jobs()
    assert {j.status for j in jobs} == {JobStatus.pending}
    assert slack.queue.enqueued == [jobs[0].job_id]
    [redraw] = result.updated
    assert redraw.params["ts"] == jobs[0].slack_message_ts
    assert ids.ACTION_APPROVAL_APPROVE not in str(redraw.params["blocks"])
    assert "3 servers" in str(redraw.params["blocks"])


def test_a_rejected_mixed_run_starts_without_its_production_server(slack):
    _mixed_run(slack)
    [ticket] = slack.tickets()

    result = slack.command(ids.CMD_TICKETS, f"reject {ticket.ticket_id[:8]} not today",
                           user=ADMIN)

    states = {j.server.hostname: j.status for j in slack.jobs()}
    assert states == {"local": JobStatus.pending, "stage-01": JobStatus.pending,
                      "prod-local": JobStatus.cancelled}
    assert len(slack.queue.enqueued) == 1
    assert "other servers start without" in result.reply_text


def test_taking_one_ticket_of_a_runs_failure_message_redraws_it_with_all_tickets(
        slack, fake_slack: FakeSlack):
    # given a run whose two jobs failed, their tickets in one failure message
    slack.command(RUN, "ping tag:web", user=OPERATOR)
    set_jobs(slack, {"local": JobStatus.failed, "stage-01": JobStatus.failed})
    with transaction(slack.session_factory) as session:
        jobs = list(session.scalars(select(Job).order_by(Job.id)).unique())
        tickets = [core_tickets.open_incident(session, job) for job in jobs]
        for ticket in tickets:
            _ = (ticket.job.playbook, ticket.job.server, ticket.assignee)
        text, blocks = failure_message(tickets)
        client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
        posted = client.chat_postMessage(channel="C_OPS", thread_ts=jobs[0].slack_message_ts,
                                         text=text, blocks=blocks)
        core_tickets.attach_message(session, [t.ticket_id for t in tickets], "C_OPS",
                                    posted["ts"])
    # when the operator takes one of them
    result = slack.click(ids.ACTION_TICKET_TAKE, tickets[0].ticket_id, user=OPERATOR,
                         message_ts=posted["ts"])
    # then the one message is redrawn with both tickets, the first now in progress
    [redraw] = result.updated
    assert redraw.params["ts"] == posted["ts"]
    body = str(redraw.params["blocks"])
    assert tickets[1].ticket_id in body and "in progress" in body
    take = [e for b in redraw.params["blocks"] if isinstance(b, dict)
            and b.get("type") == "actions" for e in b["elements"]
            if e["action_id"] == ids.ACTION_TICKET_TAKE]
    assert [e["value"] for e in take] == [tickets[1].ticket_id]


def test_job_and_jobs_show_the_run_a_job_belongs_to(slack):
    slack.command(RUN, "ping tag:web", user=OPERATOR)
    first, second = slack.jobs()

    shown = slack.command(ids.CMD_JOB, first.job_id[:8], user=OPERATOR)
    listed = slack.command(ids.CMD_JOBS, "", user=OPERATOR)

    assert f"Run* `{first.run_id[:8]}`" in shown.reply_text
    assert "run of 2 servers" in shown.reply_text and second.job_id[:8] in shown.reply_text
    assert "of 2" in listed.reply_text


def test_a_launch_on_fifty_servers_is_one_message_within_slacks_limits(slack):
    # given 50 servers tagged fleet
    with transaction(slack.session_factory) as session:
        session.add_all([Server(hostname=f"node-{i:02d}", tags=["fleet"], connection="local")
                         for i in range(50)])

    result = slack.command(RUN, "ping tag:fleet", user=OPERATOR)

    [posted] = result.posted
    assert len(posted.blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in posted.blocks if b["type"] == "section")
    assert "pending 50" in blocks_text(posted.blocks) and "more pending" in str(posted.blocks)
    assert len(slack.queue.enqueued) == 1 and len(slack.jobs()) == 50
    assert len(result.calls_to("chat.postMessage")) == 1
