"""`/api/stats`, `/api/audit`, `/api/tickets…`, `/api/servers`, `/api/playbooks` over real
HTTP, with chat's permissions and words."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from db.models import Job, JobStatus
from db.session import transaction

BOTH = pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)


def failed_job_with_ticket(api) -> str:
    """A failed job and its incident ticket, as the worker leaves them."""
    from core import tickets

    job_id = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=api.token("oscar")).body["jobs"][0]["id"]
    with transaction(api.harness.session_factory) as session:
        session.execute(update(Job).where(Job.job_id == job_id)
                        .values(status=JobStatus.failed, error_message="task ping failed"))
        job = session.query(Job).filter_by(job_id=job_id).one()
        return tickets.open_incident(session, job).ticket_id


@BOTH
def test_stats_count_the_last_days_jobs_by_status(api):
    token = api.token("victor")
    api.post("/api/jobs", {"playbook": "ping", "target": "tag:web"}, token=api.token("alice"))

    answer = api.get("/api/stats?days=7", token=token)

    assert answer.status == 200
    assert answer.body["total"] == 2 and answer.body["by_status"]["pending"] == 2
    assert set(answer.body["by_status"]) >= {"success", "failed", "running"}
    assert api.get("/api/stats?days=0", token=token).status == 422


@BOTH
def test_the_audit_trail_of_a_job_is_for_admins_only(api):
    job_id = api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                      token=api.token("alice")).body["jobs"][0]["id"]
    query = f"/api/audit?resource_type=job&resource_id={job_id}"

    admin = api.get(query, token=api.token("bob"))
    operator = api.get(query, token=api.token("alice"))
    incomplete = api.get("/api/audit?resource_type=job", token=api.token("bob"))

    assert admin.status == 200
    [launch] = admin.body["entries"]
    assert launch["action"] == "job.launch" and launch["ip_address"] == "127.0.0.1"
    assert launch["user_agent"] == "playbot-tests/1.0" and launch["request_id"]
    assert operator.status == 403 and "read the audit trail" in operator.detail
    assert incomplete.status == 422


@BOTH
def test_tickets_are_listed_shown_and_resolved_with_a_note(api):
    ticket_id = failed_job_with_ticket(api)
    alice = api.token("alice")

    queue = api.get("/api/tickets", token=api.token("victor"))
    shown = api.get(f"/api/tickets/{ticket_id[:8]}", token=alice)
    no_note = api.post(f"/api/tickets/{ticket_id}/resolve", {}, token=alice)
    by_viewer = api.post(f"/api/tickets/{ticket_id}/resolve", {"note": "x"},
                         token=api.token("victor"))
    resolved = api.post(f"/api/tickets/{ticket_id}/resolve", {"note": "restarted the agent"},
                        token=alice)
    twice = api.post(f"/api/tickets/{ticket_id}/resolve", {"note": "again"}, token=alice)

    assert [t["id"] for t in queue.body["tickets"]] == [ticket_id]
    assert shown.body["status"] == "open" and shown.body["kind"] == "incident"
    assert no_note.status == 422 and "note" in no_note.detail
    assert by_viewer.status == 403
    assert resolved.status == 200 and resolved.body["status"] == "resolved"
    assert resolved.body["resolution_note"] == "restarted the agent"
    assert twice.status == 409
    assert api.get("/api/tickets?status=resolved", token=alice).body["tickets"][0]["id"] \
        == ticket_id
    assert api.get("/api/tickets?status=lost", token=alice).status == 422
    assert api.get("/api/tickets/ffffffff", token=alice).status == 404


def test_servers_and_playbooks_list_with_filters(api):
    token = api.token("victor")

    everything = api.get("/api/servers", token=token)
    prod = api.get("/api/servers?environment=production", token=token)
    web = api.get("/api/servers?tag=web", token=token)
    books = api.get("/api/playbooks", token=token)

    assert {s["hostname"] for s in everything.body["servers"]} == {"local", "stage-01",
                                                                   "prod-local"}
    assert [s["hostname"] for s in prod.body["servers"]] == ["prod-local"]
    assert {s["hostname"] for s in web.body["servers"]} == {"local", "stage-01"}
    deploy = next(b for b in books.body["playbooks"] if b["name"] == "deploy")
    assert deploy["variables"]["version"]["type"] == "string"
    assert api.get("/api/servers?environment=moon", token=token).status == 422


def test_every_read_is_audited_with_the_token_it_used(api):
    api.get("/api/servers", token=api.token("victor", name="dashboard"))

    [row] = api.harness.audit("servers.list")
    assert row.details["via"] == "api" and row.details["using"] == "api token dashboard"
    assert row.user_agent == "playbot-tests/1.0"


def test_unknown_endpoints_and_methods_are_problems_too(api):
    token = api.token("victor")

    assert api.get("/api/nothing", token=token).status == 404
    wrong = api.request("DELETE", "/api/jobs", token=token)
    assert wrong.status == 405 and wrong.headers["Content-Type"] == "application/problem+json"
