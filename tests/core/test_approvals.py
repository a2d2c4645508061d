"""Four-eyes approval of production runs: who may decide, once, before the request expires."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core import approvals, jobs, request_digest
from core.errors import InvalidInput, InvalidState, NotAllowed
from db.base import utcnow
from db.models import AuditLog, Job, JobStatus, Ticket, TicketStatus


def production_request(world, policy, who="oscar"):
    result = jobs.launch(world.session, world.user(who), playbook="ping", target="prod-01",
                         raw_vars={}, check_mode=False, request_key=None, channel_id="C1",
                         policy=policy)
    world.session.commit()
    return result.jobs[0], result.approval_tickets[0]


def test_another_admin_approves_and_the_job_becomes_pending(world, policy):
    # given oscar's production run waits for approval
    job, ticket = production_request(world, policy)
    # when alice approves it
    approved = approvals.approve(world.session, world.user("alice"), ticket.ticket_id,
                                 policy=policy)
    world.session.commit()
    # then the job may run and the request says who approved it
    assert approved.id == job.id and approved.status == JobStatus.pending
    world.session.refresh(ticket)
    assert (ticket.status, ticket.assignee.username, ticket.resolution_note) == (
        TicketStatus.resolved, "alice", "Approved by @alice")
    assert approvals.decision(ticket) == "approved"
    row = world.session.scalars(select(AuditLog).where(
        AuditLog.action == "approval.approve")).one()
    assert row.details["job"] == job.job_id and row.details["requester"] == "oscar"


def test_an_admin_cannot_approve_their_own_request(world, policy):
    _, ticket = production_request(world, policy, who="alice")
    with pytest.raises(NotAllowed, match="another admin must approve"):
        approvals.approve(world.session, world.user("alice"), ticket.ticket_id, policy=policy)


def test_with_self_approval_on_an_admin_may_approve_their_own_request(world, policy):
    _, ticket = production_request(world, policy, who="alice")
    job = approvals.approve(world.session, world.user("alice"), ticket.ticket_id,
                            policy=replace(policy, admins_self_approve=True))
    assert job.status == JobStatus.pending


@pytest.mark.parametrize("who", ["oscar", "olga", "vera"])
def test_operators_and_viewers_cannot_decide(world, policy, who):
    _, ticket = production_request(world, policy)
    with pytest.raises(NotAllowed, match="admin role"):
        approvals.approve(world.session, world.user(who), ticket.ticket_id, policy=policy)
    with pytest.raises(NotAllowed, match="admin role"):
        approvals.reject(world.session, world.user(who), ticket.ticket_id)


def test_a_rejected_run_is_cancelled_with_the_reason(world, policy):
    job, ticket = production_request(world, policy)
    rejected = approvals.reject(world.session, world.user("dave"), ticket.ticket_id[:8],
                                reason="not during business hours")
    world.session.commit()
    assert rejected.status == JobStatus.cancelled
    assert rejected.error_message == "Rejected by @dave: not during business hours"
    world.session.refresh(ticket)
    assert approvals.decision(ticket) == "rejected" and ticket.assignee.username == "dave"


def test_a_rejection_without_a_reason_is_refused_and_decides_nothing(world, policy):
    job, ticket = production_request(world, policy)
    with pytest.raises(InvalidInput, match="needs a reason"):
        approvals.reject(world.session, world.user("dave"), ticket.ticket_id, reason="  ")
    world.session.refresh(ticket)
    assert approvals.decision(ticket) == "pending"
    assert job.status == JobStatus.awaiting_approval


def test_a_decided_request_cannot_be_decided_again(world, policy):
    _, ticket = production_request(world, policy)
    approvals.approve(world.session, world.user("alice"), ticket.ticket_id, policy=policy)
    world.session.commit()
    with pytest.raises(InvalidState, match="already approved by @alice"):
        approvals.approve(world.session, world.user("dave"), ticket.ticket_id, policy=policy)
    with pytest.raises(InvalidState, match="already approved by @alice"):
        approvals.reject(world.session, world.user("dave"), ticket.ticket_id)


def test_an_expired_request_cannot_be_approved_and_its_job_is_cancelled(world, policy):
    # given a request past its deadline
    job, ticket = production_request(world, policy)
    ticket.expires_at = utcnow() - timedelta(seconds=1)
    world.session.commit()
    # when an admin tries to approve it
    with pytest.raises(InvalidState, match="expired"):
        approvals.approve(world.session, world.user("alice"), ticket.ticket_id, policy=policy)
    world.session.commit()  # a caller that keeps the expiry (the CLI) commits it
    # then
    world.session.refresh(job)
    world.session.refresh(ticket)
    assert job.status == JobStatus.cancelled and "expired" in job.error_message
    assert approvals.decision(ticket) == "expired"


def test_overdue_requests_expire_and_their_jobs_are_cancelled(world, policy):
    # given two requests, one overdue
    old_job, old = production_request(world, policy)
    fresh_job, fresh = production_request(world, replace(policy, approval_ttl=timedelta(days=1)),
                                          who="olga")
    old.expires_at = utcnow() - timedelta(minutes=1)
    world.session.commit()
    # when the clock runs
    expired = approvals.expire_overdue(world.session, utcnow())
    world.session.commit()
    # then only the overdue one expired, and only once
    assert [t.id for t in expired] == [old.id]
    assert expired[0].job.status == JobStatus.cancelled
    assert approvals.decision(expired[0]) == "expired"
    assert world.session.get(Job, fresh_job.id).status == JobStatus.awaiting_approval
    assert approvals.expire_overdue(world.session, utcnow()) == []
    row = world.session.scalars(select(AuditLog).where(
        AuditLog.action == "approval.expire")).one()
    assert row.user_id is None and row.resource_id == old.ticket_id


def test_an_incident_ticket_is_not_an_approval_request(world, policy):
    from core.tickets import open_incident

    job, _ = production_request(world, policy)
    incident = open_incident(world.session, job)
    world.session.commit()
    with pytest.raises(InvalidState, match="not an approval request"):
        approvals.approve(world.session, world.user("alice"), incident.ticket_id, policy=policy)


def _approve_at_once(world, policy, session_factory, ticket, admins, *, success: str,  # type: ignore[no-untyped-def]
                     refusals: tuple[type[Exception], ...]) -> dict[str, str]:
    """Each admin clicks Approve on `ticket` in a session of their own, all at the same
    moment (after each has seen the open request): admin -> `success` or the refusal."""
    barrier = threading.Barrier(len(admins))
    outcomes: dict[str, str] = {}

    def click(admin: str) -> None:
        with session_factory() as session:
            actor = session.scalars(select(type(world.user(admin))).where(
                type(world.user(admin)).username == admin)).one()
            session.scalars(select(Ticket)).all()  # every admin has seen the open request
            barrier.wait(timeout=10)
            try:
                approvals.approve(session, actor, ticket.ticket_id, policy=policy)
                session.commit()
                outcomes[admin] = success
            except refusals as exc:
                session.rollback()
                outcomes[admin] = str(exc)

    threads = [threading.Thread(target=click, args=(a,)) for a in admins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_two_admins_approving_at_once_get_one_decision(world, policy, session_factory):
    # given a waiting production run and two admins clicking Approve at the same moment
    job, ticket = production_request(world, policy)
    outcomes = _approve_at_once(world, policy, session_factory, ticket, ("alice", "dave"),
                                success="approved", refusals=(InvalidState,))
    # then exactly one approval counts and the other admin is told
    assert sorted(outcomes.values(), key=len)[0] == "approved"
    loser = next(v for v in outcomes.values() if v != "approved")
    assert "already approved by @" in loser
    with session_factory() as session:
        assert session.get(Job, job.id).status == JobStatus.pending
        assert session.scalars(select(AuditLog).where(
            AuditLog.action == "approval.approve")).all().__len__() == 1


def test_with_several_approvers_no_approval_given_at_once_is_lost(world, policy,
                                                                  session_factory):
    # given a run needing three admins, and two of them clicking Approve at the same moment
    policy = replace(policy, production_approvers=3)
    job, ticket = production_request(world, policy)
    outcomes = _approve_at_once(world, policy, session_factory, ticket, ("alice", "dave"),
                                success="recorded",
                                refusals=(InvalidState, OperationalError))
    # then every approval reported as recorded is on the ticket, and the job still waits
    recorded = {admin for admin, outcome in outcomes.items() if outcome == "recorded"}
    assert recorded, outcomes
    with session_factory() as session:
        fresh = session.get(Ticket, ticket.id)
        assert {a["username"] for a in fresh.approvals} == recorded
        assert fresh.status == TicketStatus.open
        assert session.get(Job, job.id).status == JobStatus.awaiting_approval


def test_a_server_repointed_after_the_request_voids_the_approval(world, policy):
    # given a waiting request, then someone changes the production server's address
    job, ticket = production_request(world, policy)
    world.servers["prod-01"].ip_address = "10.9.9.9"
    world.session.commit()
    # when an admin approves, the approval is refused as void
    with pytest.raises(InvalidState, match="void: the server prod-01 changed"):
        approvals.approve_run(world.session, world.user("alice"), ticket.ticket_id,
                              policy=policy)
    world.session.rollback()
    # and settling it closes the request and cancels the job, audited
    [voided] = approvals.void_changed_requests(world.session, ticket.ticket_id)
    world.session.commit()
    assert approvals.decision(voided) == "void"
    world.session.refresh(job)
    assert job.status == JobStatus.cancelled
    assert job.error_message == ("Approval void: the server prod-01 changed since it was "
                                 "requested.")
    assert world.session.scalars(select(AuditLog).where(
        AuditLog.action == "approval.void")).one().details["when"] == "approval"


def test_an_unchanged_request_keeps_its_digest(world, policy):
    job, ticket = production_request(world, policy)
    assert ticket.request_digest == request_digest.digest(job)
    assert not request_digest.changed(ticket)


def test_a_request_withdrawn_by_cancelling_its_job_reads_as_withdrawn(world, policy):
    job, ticket = production_request(world, policy)
    jobs.cancel(world.session, world.user("oscar"), job.job_id)
    world.session.commit()
    world.session.refresh(ticket)
    assert approvals.decision(ticket) == "withdrawn"
    with pytest.raises(InvalidState, match="withdrawn"):
        approvals.approve(world.session, world.user("alice"), ticket.ticket_id, policy=policy)


# a run with several production servers ----------------------------------------------------


def mixed_run(world, policy, who="oscar"):
    """oscar's run on web-01 (development), web-02 (staging), prod-01 and prod-02."""
    world.servers["prod-02"].tags = ["db", "web"]
    world.session.commit()
    result = jobs.launch(world.session, world.user(who), playbook="ping", target="tag:web",
                         raw_vars={}, check_mode=False, request_key=None, channel_id="C1",
                         policy=policy)
    world.session.commit()
    return result


def test_one_approval_decides_every_production_server_of_a_run_and_starts_it(world, policy):
    # given a run whose two production jobs wait, and whose other two wait for them
    result = mixed_run(world, policy)
    assert len(result.approval_tickets) == 2
    assert jobs.startable_job(world.session, result.run_id) is None
    # when alice approves one of its requests
    decided = approvals.approve_run(world.session, world.user("alice"),
                                    result.approval_tickets[1].ticket_id, policy=policy)
    world.session.commit()
    # then both are approved, each audited, and the run can start
    assert sorted(j.server.hostname for j in decided.jobs) == ["prod-01", "prod-02"]
    assert {j.status for j in jobs.run_jobs(world.session, result.run_id)} == {
        JobStatus.pending}
    rows = world.session.scalars(select(AuditLog).where(
        AuditLog.action == "approval.approve")).all()
    assert sorted(r.resource_id for r in rows) == sorted(
        t.ticket_id for t in result.approval_tickets)
    assert decided.startable is not None and decided.startable.run_id == result.run_id


def test_the_requester_cannot_approve_their_own_run(world, policy):
    result = mixed_run(world, policy, who="alice")
    with pytest.raises(NotAllowed, match="four-eyes"):
        approvals.approve_run(world.session, world.user("alice"),
                              result.approval_tickets[0].ticket_id, policy=policy)


def test_a_rejected_run_cancels_its_production_jobs_and_starts_the_others(world, policy):
    result = mixed_run(world, policy)

    decided = approvals.reject_run(world.session, world.user("dave"),
                                   result.approval_tickets[0].ticket_id, reason="freeze")
    world.session.commit()

    states = {j.server.hostname: j.status for j in jobs.run_jobs(world.session, result.run_id)}
    assert states == {"web-01": JobStatus.pending, "web-02": JobStatus.pending,
                      "prod-01": JobStatus.cancelled, "prod-02": JobStatus.cancelled}
    assert decided.startable is not None and decided.startable.status == JobStatus.pending
    assert len(world.session.scalars(select(AuditLog).where(
        AuditLog.action == "approval.reject")).all()) == 2


def test_expired_requests_of_a_run_let_its_other_servers_start(world, policy):
    result = mixed_run(world, policy)
    for ticket in result.approval_tickets:
        ticket.expires_at = utcnow() - timedelta(seconds=1)
    world.session.commit()

    expired = approvals.expire_overdue(world.session, utcnow())
    startable = approvals.runs_to_start(world.session, expired)
    world.session.commit()

    assert len(expired) == 2
    [job] = startable
    assert job.run_id == result.run_id and job.status == JobStatus.pending
