"""`/api/jobs…` over real HTTP: launch with chat's rules and words, idempotency, lists with
filters and cursors, one job, its log after line N, cancel — on SQLite and MariaDB."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from db.models import Job, JobLog, JobStatus, LogLevel, Playbook
from db.session import transaction
from slackui import ids
from tests.handlers.harness import blocks_text

BOTH = pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)


def add_log(api, job_id: str, lines: list[str], start: int = 1) -> None:
    """Write log lines as the worker's log sink does."""
    job = api.harness.job(job_id)
    with transaction(api.harness.session_factory) as session:
        for offset, text in enumerate(lines):
            session.add(JobLog(job_id=job.id, line_number=start + offset, content=text,
                               log_level=LogLevel.INFO))


def set_status(api, job_id: str, status: JobStatus) -> None:
    with transaction(api.harness.session_factory) as session:
        session.execute(update(Job).where(Job.job_id == job_id).values(status=status))


@BOTH
def test_an_operator_launches_a_playbook_and_gets_202_with_the_run_and_its_jobs(api):
    token = api.token("alice")

    answer = api.post("/api/jobs", {"playbook": "deploy", "target": "local",
                                    "extra_vars": {"version": "2.4", "replicas": 3}},
                      token=token)

    assert answer.status == 202
    assert answer.body["status"] == "accepted"
    [job] = answer.body["jobs"]
    assert job["status"] == "pending" and job["server"]["hostname"] == "local"
    assert job["extra_vars"]["replicas"] == 3 and job["user"]["username"] == "alice"
    # the run is queued and its message posted to Slack, as a chat launch is
    assert api.harness.queue.enqueued == [job["id"]]
    assert api.harness.fake.calls_to("chat.postMessage")
    # the launch is audited with the caller's address and user agent
    [row] = api.harness.audit("job.launch")
    assert row.resource_id == job["id"] and row.ip_address == "127.0.0.1"
    assert row.user_agent == "playbot-tests/1.0"


@BOTH
def test_a_production_run_answers_awaiting_approval_and_posts_the_card_to_slack(api, slack):
    token = api.token("alice")

    answer = api.post("/api/jobs", {"playbook": "ping", "target": "prod-local"}, token=token)

    assert answer.status == 202 and answer.body["status"] == "awaiting_approval"
    assert "approval of an admin other than you" in answer.body["message"]
    assert answer.body["jobs"][0]["status"] == "awaiting_approval"
    assert len(answer.body["approval_tickets"]) == 1
    assert api.harness.queue.enqueued == []  # nothing runs before the approval
    # the approval card went to the caller's DM (no API or jobs channel is configured)
    [card] = [c for c in api.harness.fake.calls_to("chat.postMessage")]
    assert ids.ACTION_APPROVAL_APPROVE in str(card.params.get("blocks"))
    assert str(card.params["channel"]).startswith("D")


def test_an_api_production_run_of_a_check_safe_playbook_enqueues_its_preview(api):
    # given: ping's sidecar declares `check_safe: true`
    with transaction(api.harness.session_factory) as session:
        session.execute(update(Playbook).where(Playbook.name == "ping").values(check_safe=True))

    answer = api.post("/api/jobs", {"playbook": "ping", "target": "prod-local"},
                      token=api.token("alice"))

    assert answer.status == 202 and answer.body["status"] == "awaiting_approval"
    job, preview = api.harness.jobs()
    assert job.status == JobStatus.awaiting_approval
    assert preview.check_mode and preview.status == JobStatus.pending
    assert api.harness.queue.enqueued == [preview.job_id]  # only the preview runs now
    [card] = api.harness.fake.calls_to("chat.postMessage")
    assert "Preview (check mode) running" in blocks_text(card.params.get("blocks"))


@pytest.mark.parametrize("slack_settings", [{"playbot_api_channel": "C_DEPLOYS"}])
def test_api_runs_post_their_message_in_the_api_channel_when_one_is_set(api):
    api.post("/api/jobs", {"playbook": "ping", "target": "local"}, token=api.token("alice"))

    [message] = api.harness.fake.channel_messages("C_DEPLOYS")
    assert "ping" in (message.text + blocks_text(message.blocks))


@BOTH
def test_a_retried_request_with_the_same_idempotency_key_returns_the_first_answer(api):
    token = api.token("alice")
    body = {"playbook": "ping", "target": "tag:web"}
    headers = {"Idempotency-Key": "deploy-build-4711"}

    first = api.post("/api/jobs", body, token=token, headers=headers)
    again = api.post("/api/jobs", body, token=token, headers=headers)

    assert first.status == again.status == 202
    assert again.body["run_id"] == first.body["run_id"]
    assert [j["id"] for j in again.body["jobs"]] == [j["id"] for j in first.body["jobs"]]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(api.harness.jobs()) == 2  # local and stage-01, once
    assert len(api.harness.queue.enqueued) == 1


def test_the_same_launch_while_the_first_is_in_progress_is_a_409_naming_the_job(api):
    token = api.token("alice")
    first = api.post("/api/jobs", {"playbook": "ping", "target": "local"}, token=token)

    again = api.post("/api/jobs", {"playbook": "ping", "target": "local"}, token=token)

    assert again.status == 409
    assert "already have this in progress" in again.detail
    assert again.body["jobs"][0]["id"] == first.body["jobs"][0]["id"]
    assert len(api.harness.jobs()) == 1


@BOTH
@pytest.mark.parametrize(("body", "status", "words"), [
    ({"playbook": "deploy", "target": "local", "extra_vars": {"version": "abc"}}, 422,
     "version"),
    ({"playbook": "deploy", "target": "local",
      "extra_vars": {"version": "1", "ansible_host": "evil"}}, 422, "ansible_host"),
    ({"playbook": "deploy", "target": "local",
      "extra_vars": {"version": "1", "db_password": "x"}}, 422, "secret"),
    ({"playbook": "pnig", "target": "local"}, 404, "Did you mean: ping"),
    ({"playbook": "ping", "target": "nowhere"}, 404, "nowhere"),
    ({"playbook": "ping"}, 422, "`target` is required"),
    ({"playbook": "ping", "target": "local", "check_mode": "yes"}, 422, "true or false"),
    ({"playbook": "ping", "target": "local", "color": "red"}, 422, "Unknown field `color`"),
])
def test_bad_launches_get_a_problem_with_chats_words_and_leave_nothing_behind(
        api, body, status, words):
    token = api.token("alice")

    answer = api.post("/api/jobs", body, token=token)

    assert answer.status == status
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert words in answer.detail
    assert api.harness.jobs() == [] and api.harness.queue.enqueued == []


def test_a_body_that_is_not_a_json_object_is_a_422(api):
    answer = api.request("POST", "/api/jobs", token=api.token("alice"), raw=b"[1, 2",
                         headers={"Content-Type": "application/json"})

    assert answer.status == 422 and "JSON object" in answer.detail


def test_a_viewer_cannot_launch_and_the_denial_is_audited(api):
    answer = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=api.token("victor"))

    assert answer.status == 403
    assert "operator role" in answer.detail
    [row] = api.harness.audit("job.launch")
    assert row.details["outcome"] == "denied" and row.details["via"] == "api"
    assert api.harness.jobs() == []


def test_the_seeds_playbook_id_and_server_id_work_too(api):
    answer = api.post("/api/jobs", {"playbook_id": 1, "server_id": 1},
                      token=api.token("alice"))

    assert answer.status == 202
    assert answer.body["jobs"][0]["playbook"]["id"] == 1


@BOTH
def test_jobs_list_filters_by_status_user_and_since_and_pages_by_cursor(api):
    alice, oscar = api.token("alice"), api.token("oscar")
    made = [api.post("/api/jobs", {"playbook": "ping", "target": target}, token=alice)
            for target in ("local", "stage-01")]
    api.post("/api/jobs", {"playbook": "ping", "target": "local"}, token=oscar)
    set_status(api, made[0].body["jobs"][0]["id"], JobStatus.failed)

    failed = api.get("/api/jobs?status=failed", token=alice)
    mine = api.get("/api/jobs?user=me", token=alice)
    page1 = api.get("/api/jobs?limit=2", token=alice)
    page2 = api.get(f"/api/jobs?limit=2&cursor={page1.body['next_cursor']}", token=alice)
    future = api.get("/api/jobs?since=2999-01-01T00:00:00Z", token=alice)

    assert [j["status"] for j in failed.body["jobs"]] == ["failed"]
    assert {j["user"]["username"] for j in mine.body["jobs"]} == {"alice"}
    assert len(mine.body["jobs"]) == 2
    ids_seen = [j["id"] for j in page1.body["jobs"] + page2.body["jobs"]]
    assert len(ids_seen) == len(set(ids_seen)) == 3
    assert page2.body["next_cursor"] is None
    assert future.body["jobs"] == []


@pytest.mark.parametrize("query", ["status=exploded", "since=yesterday-ish", "limit=0",
                                   "cursor=garbage", "user=nobody"])
def test_bad_list_filters_are_refused_with_a_clear_problem(api, query):
    answer = api.get(f"/api/jobs?{query}", token=api.token("alice"))

    assert answer.status in (404, 422)
    assert answer.detail


@BOTH
def test_a_job_shows_with_playbook_server_and_user(api):
    token = api.token("alice")
    job_id = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=token).body["jobs"][0]["id"]

    by_uuid = api.get(f"/api/jobs/{job_id}", token=token)
    by_prefix = api.get(f"/api/jobs/{job_id[:8]}", token=api.token("victor"))

    assert by_uuid.status == 200 and by_uuid.body["id"] == job_id
    assert by_uuid.body["playbook"]["name"] == "ping"
    assert by_uuid.body["server"]["environment"] == "development"
    assert by_prefix.body == by_uuid.body
    assert api.get("/api/jobs/ffffffff", token=token).status == 404


@BOTH
def test_logs_after_n_return_only_newer_lines_and_whether_the_job_is_done(api):
    token = api.token("victor")
    job_id = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=api.token("alice")).body["jobs"][0]["id"]
    set_status(api, job_id, JobStatus.running)
    add_log(api, job_id, ["PLAY [all]", "TASK [ping]", "ok: [local]"])

    first = api.get(f"/api/jobs/{job_id}/logs", token=token)
    nothing_new = api.get(f"/api/jobs/{job_id}/logs?after={first.body['next_after']}",
                          token=token)
    add_log(api, job_id, ["PLAY RECAP"], start=4)
    set_status(api, job_id, JobStatus.success)
    last = api.get(f"/api/jobs/{job_id}/logs?after={first.body['next_after']}", token=token)

    assert [line["text"] for line in first.body["lines"]] == ["PLAY [all]", "TASK [ping]",
                                                              "ok: [local]"]
    assert first.body["done"] is False and first.body["next_after"] == 3
    assert nothing_new.body["lines"] == [] and nothing_new.body["next_after"] == 3
    assert [(line["n"], line["text"]) for line in last.body["lines"]] == [(4, "PLAY RECAP")]
    assert last.body["done"] is True and last.body["status"] == "success"
    # polling is audited once per token and job, not once per poll
    assert len(api.harness.audit("log.view")) == 1


@BOTH
def test_an_operator_cancels_their_job_and_not_someone_elses(api):
    alice = api.token("alice")
    job_id = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=alice).body["jobs"][0]["id"]

    other = api.post(f"/api/jobs/{job_id}/cancel", token=api.token("oscar"))
    own = api.post(f"/api/jobs/{job_id}/cancel", {"reason": "wrong build"}, token=alice)
    again = api.post(f"/api/jobs/{job_id}/cancel", token=alice)

    assert other.status == 403 and "Only an admin" in other.detail
    assert own.status == 200 and own.body["status"] == "cancelled"
    assert "wrong build" in own.body["error_message"]
    assert again.status == 409 and "already cancelled" in again.detail


def test_a_change_freeze_refuses_an_api_launch_with_chats_words(api):
    from core import freezes

    with transaction(api.harness.session_factory) as session:
        freezes.add_window(session, None, environment="development", start="2026-01-01 00:00",
                           end="2999-01-01 00:00", reason="year-end freeze")
    token = api.token("alice")

    refused = api.post("/api/jobs", {"playbook": "ping", "target": "local"}, token=token)
    bad_reason = api.post("/api/jobs", {"playbook": "ping", "target": "local",
                                        "break_glass": 42}, token=token)

    assert refused.status == 403 and refused.body["code"] == "Frozen"
    assert "frozen" in refused.detail and "year-end freeze" in refused.detail
    assert bad_reason.status == 422
    assert api.harness.jobs() == []
