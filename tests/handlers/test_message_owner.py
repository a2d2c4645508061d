"""One writer per Slack message (issue 14 item 6): a run's message always ends up showing
the newest state of the run, whatever order the redraws of the app, the worker and the
clock reach Slack in."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient

from core import execution, run_messages
from core.progress import RunProgress
from db.session import transaction
from slackui import ids, message_owner
from tests.handlers.fixtures import ADMIN, OPERATOR
from tests.handlers.harness import blocks_text


def last_update(fake, channel: str, ts: str):
    """The last chat.update FakeSlack received for this message."""
    calls = [c for c in fake.calls_to("chat.update")
             if c.params.get("channel") == channel and c.params.get("ts") == ts]
    assert calls, "the message was never updated"
    return calls[-1]


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_late_approve_on_a_job_cancelled_meanwhile_keeps_the_cancelled_card_and_retry(
        slack):
    # given a production run waiting for approval, cancelled by its requester
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping prod-local", user=OPERATOR)
    [job] = slack.jobs()
    [ticket] = slack.tickets()
    slack.click(ids.ACTION_JOB_CANCEL, job.job_id, user=OPERATOR,
                channel=job.slack_channel_id, message_ts=job.slack_message_ts)

    # when an admin's Approve click (on the card they still see) arrives late
    late = slack.click(ids.ACTION_APPROVAL_APPROVE, ticket.ticket_id, user=ADMIN,
                       channel=job.slack_channel_id, message_ts=job.slack_message_ts)

    # then nothing starts, and the message still is the cancelled card with its Retry
    assert late.reply_text  # told why
    assert slack.queue.enqueued == []
    final = last_update(slack.fake, job.slack_channel_id, job.slack_message_ts)
    shown = str(final.params["blocks"])
    assert "cancelled" in blocks_text(final.params["blocks"])
    assert ids.ACTION_JOB_RETRY in shown
    assert ids.ACTION_APPROVAL_APPROVE not in shown
    assert ":no_entry_sign:" in slack.fake.find_message(job.slack_channel_id,
                                                        job.slack_message_ts).text


class LateClient:
    """The worker's Slack client whose chat.update reaches Slack only after `before` ran
    (a slow network: the worker rendered the run, then someone changed it)."""

    def __init__(self, client: WebClient, before: Any) -> None:
        self._client = client
        self._before = before
        self.rendered: list[str] = []

    def chat_update(self, **params: Any) -> Any:
        before, self._before = self._before, None
        self.rendered.append(blocks_text(params["blocks"]))
        if before is not None:
            before()
        return self._client.chat_update(**params)


@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)
def test_a_stale_worker_redraw_landing_after_a_cancel_redraw_is_drawn_over(slack):
    # given a running job whose message shows its progress
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    [job] = slack.jobs()
    with transaction(slack.session_factory) as session:
        assert execution.try_claim(session, job.job_id).job is not None
    progress = RunProgress(tasks_done=3, current_task="ping")

    # when the worker's progress update (rendered while the job still just ran) reaches
    # Slack only after the Cancel click's redraw did
    cancels = []
    worker = LateClient(WebClient(token="xoxb-test", base_url=slack.fake.api_url),
                        before=lambda: cancels.append(slack.click(
                            ids.ACTION_JOB_CANCEL, job.job_id, user=OPERATOR,
                            channel=job.slack_channel_id, message_ts=job.slack_message_ts)))
    message_owner.redraw(worker, slack.session_factory, job.run_id, progress=progress)

    # then the stale drawing did reach Slack after the cancel's ...
    assert "cancelling" in blocks_text(cancels[0].updated[-1].params["blocks"])
    assert "cancelling" not in worker.rendered[0]
    # ... and was drawn over at once: the message shows the newest state
    final = last_update(slack.fake, job.slack_channel_id, job.slack_message_ts)
    assert "cancelling" in blocks_text(final.params["blocks"])
    assert len(worker.rendered) == 2


def test_a_worker_redraw_of_a_state_older_than_the_one_drawn_is_not_sent(slack):
    # given a running job cancelled and redrawn as "cancelling"
    slack.command(ids.CMD_RUN_PLAYBOOK, "ping local", user=OPERATOR)
    [job] = slack.jobs()
    with transaction(slack.session_factory) as session:
        execution.try_claim(session, job.job_id)
    stale = message_owner.read_run(slack.session_factory, job.run_id)  # the worker's read
    slack.click(ids.ACTION_JOB_CANCEL, job.job_id, user=OPERATOR,
                channel=job.slack_channel_id, message_ts=job.slack_message_ts)
    updates = len(slack.fake.calls_to("chat.update"))

    # when the worker's claim for what it read comes after the cancel's
    with transaction(slack.session_factory) as session:
        won = run_messages.claim(session, stale.first_pk, stale.version)

    # then it is refused, and the message keeps the newer state
    assert not won
    assert len(slack.fake.calls_to("chat.update")) == updates
    final = last_update(slack.fake, job.slack_channel_id, job.slack_message_ts)
    assert "cancelling" in blocks_text(final.params["blocks"])
