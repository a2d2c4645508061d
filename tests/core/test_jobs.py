"""Launching, repeating, retrying and cancelling jobs: the lifecycle up to the queue."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from core import jobs
from core.audit import RequestInfo
from core.errors import (
    InvalidInput,
    InvalidState,
    InvalidVars,
    NotAllowed,
    PlaybookChanged,
    UnknownJob,
    UnknownPlaybook,
    UnknownServer,
)
from db.models import (
    AuditLog,
    Job,
    JobStatus,
    Playbook,
    Ticket,
    TicketKind,
    TicketPriority,
    TicketStatus,
)


def run(world, policy, who="oscar", playbook="ping", target="web-01", raw_vars=None,
        check_mode=False, request_key=None, channel_id="C_OPS", request=None):
    return jobs.launch(world.session, world.user(who), playbook=playbook, target=target,
                       raw_vars=raw_vars or {}, check_mode=check_mode, request_key=request_key,
                       channel_id=channel_id, policy=policy, request=request)


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def audit_rows(session, action):
    return list(session.scalars(select(AuditLog).where(AuditLog.action == action)
                                .order_by(AuditLog.id)))


# launch ---------------------------------------------------------------------------------


def test_an_operator_launch_on_a_development_server_creates_one_pending_job(world, policy):
    # when
    result = run(world, policy, request=RequestInfo("10.1.2.3", "Slackbot 1.0"))
    world.session.commit()
    # then
    [job] = result.jobs
    assert (job.status, job.playbook.name, job.server.hostname, job.user.username) == (
        JobStatus.pending, "ping", "web-01", "oscar")
    assert job.slack_channel_id == "C_OPS" and len(job.job_id) == 36
    assert not result.duplicate and not result.needs_approval and not result.approval_tickets
    [row] = audit_rows(world.session, "job.launch")
    assert (row.user_id, row.resource_type, row.resource_id) == (
        world.user("oscar").id, "job", job.job_id)
    assert row.details["outcome"] == "allowed" and row.details["server"] == "web-01"
    assert (row.ip_address, row.user_agent) == ("10.1.2.3", "Slackbot 1.0")


def declare_check_safe(world, playbook="ping"):
    """The playbook's sidecar says `check_safe: true`: its check runs need no approval."""
    world.session.scalar(select(Playbook).where(Playbook.name == playbook)).check_safe = True


def test_a_tag_target_creates_one_job_per_server(world, policy):
    declare_check_safe(world)
    result = run(world, policy, target="tag:web", check_mode=True)
    assert sorted(j.server.hostname for j in result.jobs) == ["prod-01", "web-01", "web-02"]
    assert all(j.status == JobStatus.pending and j.check_mode for j in result.jobs)


def test_the_jobs_of_one_launch_share_a_new_run_and_are_inserted_in_server_order(world,
                                                                                 policy):
    # when
    first = run(world, policy, target="tag:web", check_mode=True)
    second = run(world, policy, target="web-01")
    world.session.commit()
    # then: one run per launch, its jobs in server-id order (the order claims lock them in)
    assert {j.run_id for j in first.jobs} == {first.run_id}
    assert [j.server_id for j in first.jobs] == sorted(j.server_id for j in first.jobs)
    assert [j.id for j in first.jobs] == sorted(j.id for j in first.jobs)
    assert second.run_id != first.run_id and second.jobs[0].run_id == second.run_id


def test_the_validated_typed_vars_are_stored_on_the_job(world, policy):
    result = run(world, policy, playbook="deploy",
                 raw_vars={"version": "1.2", "replicas": "3", "note": "{{ lookup('pipe','id') }}"})
    world.session.commit()
    assert result.jobs[0].extra_vars == {"version": "1.2", "replicas": 3, "env_name": "blue",
                                         "dry_run": False,
                                         "note": "{{ lookup('pipe','id') }}"}


def test_a_production_run_waits_for_approval_with_an_expiring_ticket(world, policy):
    # when
    result = run(world, policy, target="prod-01")
    world.session.commit()
    # then
    [job] = result.jobs
    [ticket] = result.approval_tickets
    assert job.status == JobStatus.awaiting_approval and result.needs_approval
    assert (ticket.kind, ticket.status, ticket.priority, ticket.job_id, ticket.created_by) == (
        TicketKind.approval, TicketStatus.open, TicketPriority.high, job.id,
        world.user("oscar").id)
    assert ticket.expires_at - ticket.created_at == policy.approval_ttl
    assert "prod-01" in ticket.title


def test_an_admins_production_run_also_needs_another_admin_by_default(world, policy):
    result = run(world, policy, who="alice", target="prod-01")
    assert result.jobs[0].status == JobStatus.awaiting_approval


def test_with_self_approval_on_an_admins_production_run_starts_at_once(world, policy):
    result = run(world, replace(policy, admins_self_approve=True), who="alice",
                 target="prod-01")
    assert result.jobs[0].status == JobStatus.pending and not result.approval_tickets


def test_self_approval_does_not_exempt_operators(world, policy):
    result = run(world, replace(policy, admins_self_approve=True), target="prod-01")
    assert result.jobs[0].status == JobStatus.awaiting_approval


def test_a_check_mode_run_on_production_needs_approval_like_any_run(world, policy):
    # check mode is not read-only: `check_mode: false` tasks run for real
    result = run(world, policy, target="prod-01", check_mode=True)
    assert result.jobs[0].status == JobStatus.awaiting_approval
    assert len(result.approval_tickets) == 1


def test_a_check_run_of_a_check_safe_playbook_on_production_needs_no_approval(world, policy):
    # given: the playbook's sidecar declares `check_safe: true`
    book = world.session.scalar(select(Playbook).where(Playbook.name == "ping"))
    book.check_safe = True

    # when / then: its check runs start at once; its real runs still wait
    checked = run(world, policy, target="prod-01", check_mode=True)
    assert checked.jobs[0].status == JobStatus.pending and not checked.approval_tickets
    real = run(world, policy, target="prod-01")
    assert real.jobs[0].status == JobStatus.awaiting_approval


def test_a_mixed_target_holds_only_the_production_jobs(world, policy):
    result = run(world, policy, target="tag:db")
    assert {j.server.hostname: j.status for j in result.jobs} == {
        "prod-01": JobStatus.awaiting_approval, "prod-02": JobStatus.awaiting_approval}
    assert len(result.approval_tickets) == 2


@pytest.mark.parametrize("who", ["vera", "ivan"])
def test_viewers_and_deactivated_users_cannot_launch(world, policy, who):
    with pytest.raises(NotAllowed):
        run(world, policy, who=who)
    assert count(world.session, Job) == 0


def test_an_unknown_playbook_suggests_the_closest_registered_ones(world, policy):
    with pytest.raises(UnknownPlaybook) as caught:
        run(world, policy, playbook="deplyo")
    assert "deploy" in caught.value.suggestions


def test_a_deactivated_playbook_cannot_run(world, policy):
    with pytest.raises(UnknownPlaybook, match="`retired` is deactivated"):
        run(world, policy, playbook="retired")


def test_a_playbook_changed_on_disk_since_registration_cannot_run(world, policy):
    (world.playbook_dir / "ping.yml").write_text("- hosts: all\n  tasks: []\n")
    with pytest.raises(PlaybookChanged):
        run(world, policy)
    assert count(world.session, Job) == 0


def test_bad_vars_create_nothing(world, policy):
    with pytest.raises(InvalidVars):
        run(world, policy, playbook="deploy", raw_vars={"version": "1",
                                                        "ansible_connection": "local"})
    assert count(world.session, Job) == 0 and count(world.session, Ticket) == 0


def test_an_unknown_target_creates_nothing(world, policy):
    with pytest.raises(UnknownServer):
        run(world, policy, target="web-99")
    assert count(world.session, Job) == 0


def test_a_target_wider_than_the_policy_allows_is_refused(world, policy):
    with pytest.raises(InvalidInput, match="at most 2"):
        run(world, replace(policy, max_targets=2), target="tag:web")


# repeats ---------------------------------------------------------------------------------


def test_a_repeated_request_key_returns_the_jobs_it_created(world, policy):
    # given a launch already made
    first = run(world, policy, target="tag:web", request_key="cmd:T123")
    world.session.commit()
    # when Slack delivers the same request again
    again = run(world, policy, target="tag:web", request_key="cmd:T123")
    world.session.commit()
    # then nothing new exists and the same jobs are answered
    assert again.duplicate
    assert [j.id for j in again.jobs] == [j.id for j in first.jobs]
    assert count(world.session, Job) == 3
    assert len([r for r in audit_rows(world.session, "job.launch")
                if r.details.get("duplicate")]) == 3


def test_a_repeated_request_key_of_a_production_run_returns_its_approval_tickets(world, policy):
    first = run(world, policy, target="prod-01", request_key="view:V1")
    world.session.commit()
    again = run(world, policy, target="prod-01", request_key="view:V1")
    assert again.duplicate and again.needs_approval
    assert [t.id for t in again.approval_tickets] == [t.id for t in first.approval_tickets]


def test_a_very_long_request_key_still_deduplicates(world, policy):
    key = "trigger:" + "x" * 300
    run(world, policy, request_key=key)
    world.session.commit()
    assert run(world, policy, request_key=key).duplicate


def test_launching_again_what_is_still_running_answers_with_the_running_job(world, policy):
    # given oscar's deploy is running on web-01
    first = run(world, policy, playbook="deploy", raw_vars={"version": "1.2"})
    first.jobs[0].status = JobStatus.running
    world.session.commit()
    # when he launches the same thing again (a new request)
    again = run(world, policy, playbook="deploy", raw_vars={"version": "1.2"})
    # then he is pointed at the running job
    assert again.duplicate and [j.id for j in again.jobs] == [first.jobs[0].id]
    assert count(world.session, Job) == 1


def test_a_launch_with_other_vars_or_mode_is_not_a_repeat(world, policy):
    run(world, policy, playbook="deploy", raw_vars={"version": "1.2"})
    world.session.commit()
    assert not run(world, policy, playbook="deploy", raw_vars={"version": "1.3"}).duplicate
    assert not run(world, policy, playbook="deploy", raw_vars={"version": "1.2"},
                   check_mode=True).duplicate


def test_the_same_launch_by_another_user_is_not_a_repeat(world, policy):
    run(world, policy)
    world.session.commit()
    assert not run(world, policy, who="olga").duplicate


def test_a_launch_after_the_previous_one_finished_runs_again(world, policy):
    first = run(world, policy)
    first.jobs[0].status = JobStatus.success
    world.session.commit()
    assert not run(world, policy).duplicate


def test_a_wide_launch_skips_only_the_servers_where_it_is_still_running(world, policy):
    first = run(world, policy, target="web-01", check_mode=True)
    world.session.commit()
    result = run(world, policy, target="tag:web", check_mode=True)
    assert not result.duplicate
    assert sorted(j.server.hostname for j in result.jobs) == ["prod-01", "web-02"]
    assert [j.id for j in result.already_running] == [first.jobs[0].id]


# get_job ---------------------------------------------------------------------------------


def test_a_job_is_found_by_uuid_prefix_or_numeric_id(world, policy):
    job = run(world, policy).jobs[0]
    world.session.commit()
    assert jobs.get_job(world.session, job.job_id).id == job.id
    assert jobs.get_job(world.session, job.job_id[:8].upper()).id == job.id
    assert jobs.get_job(world.session, str(job.id)).id == job.id
    assert jobs.get_job(world.session, f"#{job.id}").id == job.id


def test_an_unknown_or_too_short_job_reference_is_explained(world):
    with pytest.raises(UnknownJob):
        jobs.get_job(world.session, "deadbeef")
    with pytest.raises(InvalidInput, match="at least 6"):
        jobs.get_job(world.session, "abc")


def test_an_ambiguous_prefix_asks_for_more_characters(world, policy):
    first = run(world, policy).jobs[0]
    second = run(world, policy, target="web-02").jobs[0]
    first.job_id = "abcdef00-0000-4000-8000-000000000001"
    second.job_id = "abcdef00-0000-4000-8000-000000000002"
    world.session.commit()
    with pytest.raises(InvalidInput, match="more than one job"):
        jobs.get_job(world.session, "abcdef00")


# queue and message bookkeeping -----------------------------------------------------------


def test_the_queue_message_and_the_slack_message_are_remembered(world, policy):
    job = run(world, policy).jobs[0]
    world.session.commit()
    jobs.mark_enqueued(world.session, job.job_id, "msg-1")
    jobs.attach_message(world.session, job.job_id, "C_OPS", "1700000000.000100")
    world.session.commit()
    world.session.refresh(job)
    assert (job.dramatiq_message_id, job.slack_channel_id, job.slack_message_ts) == (
        "msg-1", "C_OPS", "1700000000.000100")
    assert job.enqueued_at is not None  # when it was sent, in database time


# cancel ---------------------------------------------------------------------------------


def test_an_operator_cancels_their_own_pending_job_at_once(world, policy):
    job = run(world, policy).jobs[0]
    world.session.commit()
    cancelled = jobs.cancel(world.session, world.user("oscar"), job.job_id[:8])
    world.session.commit()
    assert cancelled.status == JobStatus.cancelled and cancelled.completed_at is not None
    assert cancelled.error_message == "Cancelled by @oscar"
    [row] = audit_rows(world.session, "job.cancel")
    assert row.details["previous_status"] == "pending"


def test_an_operator_cannot_cancel_someone_elses_job(world, policy):
    job = run(world, policy, who="olga").jobs[0]
    world.session.commit()
    with pytest.raises(NotAllowed, match="Only an admin"):
        jobs.cancel(world.session, world.user("oscar"), job.job_id)


def test_an_admin_cancels_anyones_job(world, policy):
    job = run(world, policy, who="olga").jobs[0]
    world.session.commit()
    assert jobs.cancel(world.session, world.user("alice"), job.job_id).status == \
        JobStatus.cancelled


def test_a_viewer_cannot_cancel(world, policy):
    job = run(world, policy).jobs[0]
    world.session.commit()
    with pytest.raises(NotAllowed):
        jobs.cancel(world.session, world.user("vera"), job.job_id)


def test_cancelling_a_running_job_asks_the_worker_to_stop_it(world, policy):
    job = run(world, policy).jobs[0]
    job.status = JobStatus.running
    world.session.commit()
    cancelled = jobs.cancel(world.session, world.user("oscar"), job.job_id)
    assert cancelled.status == JobStatus.running and cancelled.cancel_requested
    with pytest.raises(InvalidState, match="already requested"):
        jobs.cancel(world.session, world.user("oscar"), job.job_id)


def test_cancelling_a_job_awaiting_approval_withdraws_its_request(world, policy):
    result = run(world, policy, target="prod-01")
    world.session.commit()
    jobs.cancel(world.session, world.user("oscar"), result.jobs[0].job_id)
    world.session.commit()
    ticket = result.approval_tickets[0]
    world.session.refresh(ticket)
    assert ticket.status == TicketStatus.closed
    assert ticket.resolution_note.startswith("Withdrawn")


def test_a_finished_job_cannot_be_cancelled(world, policy):
    job = run(world, policy).jobs[0]
    job.status = JobStatus.success
    world.session.commit()
    with pytest.raises(InvalidState, match="already success"):
        jobs.cancel(world.session, world.user("oscar"), job.job_id)


# retry ----------------------------------------------------------------------------------


def failed_job(world, policy, **launch):
    job = run(world, policy, **launch).jobs[0]
    job.status = JobStatus.failed
    job.error_message = "task X failed"
    world.session.commit()
    return job


def test_a_failed_job_is_retried_as_a_new_job_with_the_same_parameters(world, policy):
    original = failed_job(world, policy, playbook="deploy", raw_vars={"version": "2"},
                          check_mode=True)
    result = jobs.retry(world.session, world.user("olga"), original.job_id,
                        request_key="retry:1", policy=policy)
    world.session.commit()
    [job] = result.jobs
    assert job.id != original.id and job.retry_of_id == original.id
    assert (job.status, job.playbook_id, job.server_id, job.extra_vars, job.check_mode,
            job.user.username) == (JobStatus.pending, original.playbook_id, original.server_id,
                                   original.extra_vars, True, "olga")
    assert audit_rows(world.session, "job.retry")[0].details["retry_of"] == original.job_id


def test_a_retry_on_production_needs_approval_again(world, policy):
    original = failed_job(world, policy, target="prod-01", check_mode=False)
    result = jobs.retry(world.session, world.user("oscar"), original.job_id,
                        request_key=None, policy=policy)
    assert result.jobs[0].status == JobStatus.awaiting_approval and result.approval_tickets


def test_a_double_clicked_retry_makes_one_job(world, policy):
    original = failed_job(world, policy)
    first = jobs.retry(world.session, world.user("oscar"), original.job_id,
                       request_key="retry-btn:abc", policy=policy)
    world.session.commit()
    again = jobs.retry(world.session, world.user("oscar"), original.job_id,
                       request_key="retry-btn:abc", policy=policy)
    assert again.duplicate and [j.id for j in again.jobs] == [first.jobs[0].id]


@pytest.mark.parametrize("status", [JobStatus.pending, JobStatus.running, JobStatus.success])
def test_only_failed_or_cancelled_jobs_can_be_retried(world, policy, status):
    job = run(world, policy).jobs[0]
    job.status = status
    world.session.commit()
    with pytest.raises(InvalidState, match="only failed or cancelled"):
        jobs.retry(world.session, world.user("oscar"), job.job_id, request_key=None,
                   policy=policy)


def test_a_viewer_cannot_retry(world, policy):
    original = failed_job(world, policy)
    with pytest.raises(NotAllowed):
        jobs.retry(world.session, world.user("vera"), original.job_id, request_key=None,
                   policy=policy)


def test_a_retry_on_a_server_deactivated_since_is_refused(world, policy):
    original = failed_job(world, policy)
    world.servers["web-01"].is_active = False
    world.session.commit()
    with pytest.raises(UnknownServer, match="deactivated"):
        jobs.retry(world.session, world.user("oscar"), original.job_id, request_key=None,
                   policy=policy)


def test_two_deliveries_of_one_request_at_once_make_one_set_of_jobs(world, policy,
                                                                    session_factory):
    # given delivery A has created its job but not committed yet
    import threading
    import time

    from sqlalchemy.exc import IntegrityError

    from db.models import User

    a_flushed, outcome = threading.Event(), {}

    def deliver(name: str, hold: float) -> None:
        with session_factory() as session:
            oscar = session.scalars(select(User).where(User.username == "oscar")).one()

            def attempt():
                return jobs.launch(session, oscar, playbook="ping", target="web-01",
                                   raw_vars={}, check_mode=False, request_key="cmd:SAME",
                                   channel_id="C1", policy=policy)

            try:
                result = attempt()
                if hold:
                    a_flushed.set()
                    time.sleep(hold)
                session.commit()
                outcome[name] = ("duplicate" if result.duplicate else "created",
                                 [j.id for j in result.jobs])
            except IntegrityError:
                # the caller's pattern: roll back, do the whole request again (B usually
                # needs no retry: its insert loses to A's job in a savepoint)
                session.rollback()
                result = attempt()
                session.commit()
                outcome[name] = ("duplicate" if result.duplicate else "created",
                                 [j.id for j in result.jobs])

    a = threading.Thread(target=deliver, args=("A", 0.5))
    a.start()
    assert a_flushed.wait(10)
    # when delivery B arrives meanwhile
    b = threading.Thread(target=deliver, args=("B", 0))
    b.start()
    a.join(30)
    b.join(30)
    # then B answers with A's job
    assert outcome["A"][0] == "created" and outcome["B"][0] == "duplicate"
    assert outcome["A"][1] == outcome["B"][1]
    with session_factory() as session:
        assert count(session, Job) == 1


def test_the_launch_audit_row_never_holds_a_secret(world, policy):
    run(world, policy, playbook="free",
        raw_vars={"msg": "connect with password=hunter2", "url": "https://u:pw123@h/x"})
    world.session.commit()
    [row] = audit_rows(world.session, "job.launch")
    text = str(row.details)
    assert "hunter2" not in text and "pw123" not in text
    assert row.details["extra_vars"]["msg"] == "connect with password=[REDACTED]"


# runs -----------------------------------------------------------------------------------


def _ended(world, result, statuses):
    """Give the run's jobs these statuses by hostname (failed ones with an error)."""
    for job in result.jobs:
        job.status = statuses[job.server.hostname]
        if job.status == JobStatus.failed:
            job.error_message = f"Task 'ping' failed on {job.server.hostname}"
    world.session.commit()


def test_cancelling_a_running_job_of_a_run_stops_the_whole_run(world, policy):
    # given a run on three servers, two running and one still pending
    result = run(world, policy, target="tag:web", check_mode=True)
    web01, web02, prod01 = (next(j for j in result.jobs if j.server.hostname == h)
                            for h in ("web-01", "web-02", "prod-01"))
    web01.status = web02.status = JobStatus.running
    world.session.commit()
    # when oscar cancels one of them
    jobs.cancel(world.session, world.user("oscar"), web01.job_id)
    world.session.commit()
    # then every job of the run stops: the running ones through the worker
    states = {j.server.hostname: (j.status, j.cancel_requested)
              for j in jobs.run_jobs(world.session, result.run_id)}
    assert states == {"web-01": (JobStatus.running, True), "web-02": (JobStatus.running, True),
                      "prod-01": (JobStatus.cancelled, False)}
    assert {r.resource_id for r in audit_rows(world.session, "job.cancel")} == {
        web01.job_id, web02.job_id, prod01.job_id}


def test_cancelling_a_pending_job_of_a_run_leaves_the_rest_of_the_run(world, policy):
    declare_check_safe(world)
    result = run(world, policy, target="tag:web", check_mode=True)
    world.session.commit()

    jobs.cancel(world.session, world.user("oscar"), result.jobs[0].job_id)
    world.session.commit()

    statuses = [j.status for j in jobs.run_jobs(world.session, result.run_id)]
    assert statuses == [JobStatus.cancelled, JobStatus.pending, JobStatus.pending]


def test_cancel_run_cancels_every_unfinished_job_and_refuses_a_finished_run(world, policy):
    # given a run whose first job succeeded already
    result = run(world, policy, target="tag:web", check_mode=True)
    result.jobs[0].status = JobStatus.success
    world.session.commit()
    # when
    stopped = jobs.cancel_run(world.session, world.user("oscar"), result.run_id)
    world.session.commit()
    # then
    assert len(stopped) == 2
    assert [j.status for j in jobs.run_jobs(world.session, result.run_id)] == [
        JobStatus.success, JobStatus.cancelled, JobStatus.cancelled]
    with pytest.raises(InvalidState, match="over"):
        jobs.cancel_run(world.session, world.user("oscar"), result.run_id[:8])


def test_an_operator_cannot_cancel_someone_elses_run(world, policy):
    result = run(world, policy, who="olga", target="tag:web", check_mode=True)
    world.session.commit()
    with pytest.raises(NotAllowed):
        jobs.cancel_run(world.session, world.user("oscar"), result.run_id)


def test_retry_failed_launches_only_the_failed_servers_as_a_new_run(world, policy):
    # given a finished run: web-01 succeeded, web-02 failed, prod-01 failed (unreachable)
    result = run(world, policy, target="tag:web", check_mode=True)
    _ended(world, result, {"web-01": JobStatus.success, "web-02": JobStatus.failed,
                           "prod-01": JobStatus.failed})
    failed = {j.server.hostname: j for j in result.jobs if j.status == JobStatus.failed}
    # when
    retry = jobs.retry_failed(world.session, world.user("oscar"), result.jobs[0].job_id,
                              request_key="retry-failed:x", policy=policy)
    world.session.commit()
    # then: one new run on the failed servers, each job retrying its failed one
    assert retry.run_id != result.run_id
    assert {j.server.hostname: j.retry_of_id for j in retry.jobs} == {
        h: j.id for h, j in failed.items()}
    assert all(j.check_mode and j.run_id == retry.run_id for j in retry.jobs)
    assert len(audit_rows(world.session, "job.retry")) == 2
    # and a double click is that same retry
    again = jobs.retry_failed(world.session, world.user("oscar"), result.run_id,
                              request_key="retry-failed:x", policy=policy)
    assert again.duplicate and [j.id for j in again.jobs] == [j.id for j in retry.jobs]


def test_retry_failed_of_a_production_server_needs_approval_again(world, policy):
    result = run(world, policy, target="tag:db", check_mode=True)
    _ended(world, result, {"prod-01": JobStatus.failed, "prod-02": JobStatus.success})

    retry = jobs.retry_failed(world.session, world.user("oscar"), result.run_id,
                              request_key=None, policy=policy)

    [job] = retry.jobs
    assert job.server.hostname == "prod-01" and job.check_mode
    assert job.status == JobStatus.awaiting_approval  # check mode is no exemption


def test_retry_failed_is_refused_while_the_run_is_in_progress_or_nothing_failed(world,
                                                                                 policy):
    result = run(world, policy, target="tag:web", check_mode=True)
    world.session.commit()
    with pytest.raises(InvalidState, match="still in progress"):
        jobs.retry_failed(world.session, world.user("oscar"), result.run_id,
                          request_key=None, policy=policy)
    _ended(world, result, {"web-01": JobStatus.success, "web-02": JobStatus.success,
                           "prod-01": JobStatus.cancelled})
    with pytest.raises(InvalidState, match="nothing to retry"):
        jobs.retry_failed(world.session, world.user("oscar"), result.run_id,
                          request_key=None, policy=policy)


def test_a_run_is_startable_once_none_of_its_jobs_awaits_approval(world, policy):
    # given a mixed run: prod-01 and prod-02 wait for approval, nothing else (tag:db)
    mixed = run(world, policy, target="tag:web")
    world.session.commit()
    waiting = [j for j in mixed.jobs if j.status == JobStatus.awaiting_approval]
    assert [j.server.hostname for j in waiting] == ["prod-01"]
    assert jobs.startable_job(world.session, mixed.run_id) is None
    # when its production job is cancelled (rejected, expired, withdrawn)
    jobs.cancel(world.session, world.user("oscar"), waiting[0].job_id)
    world.session.commit()
    # then the rest of the run starts from its first pending job
    first = jobs.startable_job(world.session, mixed.run_id)
    assert first is not None and first.status == JobStatus.pending
    jobs.mark_run_enqueued(world.session, mixed.run_id, "msg-9")
    world.session.commit()
    assert {j.dramatiq_message_id for j in jobs.run_jobs(world.session, mixed.run_id)
            if j.status == JobStatus.pending} == {"msg-9"}
