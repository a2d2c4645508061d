"""Incident tickets: opened by failures, worked from a queue by priority, taken, resolved, closed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core import jobs, tickets
from core.errors import InvalidInput, InvalidState, NotAllowed, UnknownTicket
from db.base import utcnow
from db.models import AuditLog, JobStatus, TicketKind, TicketPriority, TicketStatus


def failed(world, policy, target="web-01", who="oscar", error="task 'restart' failed on web-01"):
    job = jobs.launch(world.session, world.user(who), playbook="ping", target=target,
                      raw_vars={}, check_mode=True, request_key=None, channel_id=None,
                      policy=policy).jobs[0]
    job.status = JobStatus.failed
    job.error_message = error
    world.session.flush()
    return job


def incident(world, policy, target="web-01"):
    ticket = tickets.open_incident(world.session, failed(world, policy, target=target))
    world.session.commit()
    return ticket


@pytest.mark.parametrize("target, priority", [("prod-01", TicketPriority.critical),
                                              ("web-02", TicketPriority.high),
                                              ("web-01", TicketPriority.medium)])
def test_a_failed_job_opens_an_incident_prioritised_by_environment(world, policy, target,
                                                                    priority):
    job = failed(world, policy, target=target)
    ticket = tickets.open_incident(world.session, job)
    world.session.commit()
    assert (ticket.kind, ticket.status, ticket.priority, ticket.job_id, ticket.created_by) == (
        TicketKind.incident, TicketStatus.open, priority, job.id, world.user("oscar").id)
    assert ticket.title == f"ping failed on {target} (check mode)"
    assert ticket.description == "task 'restart' failed on web-01"


def test_a_job_gets_one_incident_however_often_it_is_reported(world, policy):
    job = failed(world, policy)
    first = tickets.open_incident(world.session, job)
    assert tickets.open_incident(world.session, job).id == first.id
    row = world.session.scalars(select(AuditLog).where(AuditLog.action == "ticket.open")).one()
    assert row.user_id is None


def test_an_operator_takes_an_open_ticket(world, policy):
    ticket = incident(world, policy)
    taken = tickets.take(world.session, world.user("olga"), ticket.ticket_id[:8])
    world.session.commit()
    assert (taken.status, taken.assignee.username) == (TicketStatus.in_progress, "olga")


def test_a_viewer_cannot_take_resolve_or_close(world, policy):
    ticket = incident(world, policy)
    vera = world.user("vera")
    for act in (lambda: tickets.take(world.session, vera, ticket.ticket_id),
                lambda: tickets.resolve(world.session, vera, ticket.ticket_id, "fixed"),
                lambda: tickets.close(world.session, vera, ticket.ticket_id)):
        with pytest.raises(NotAllowed):
            act()


def test_a_ticket_someone_has_is_not_taken_from_them_by_an_operator(world, policy):
    ticket = incident(world, policy)
    tickets.take(world.session, world.user("olga"), ticket.ticket_id)
    world.session.commit()
    with pytest.raises(InvalidState, match="already taken by @olga"):
        tickets.take(world.session, world.user("oscar"), ticket.ticket_id)


def test_an_admin_may_take_over_a_ticket(world, policy):
    ticket = incident(world, policy)
    tickets.take(world.session, world.user("olga"), ticket.ticket_id)
    world.session.commit()
    assert tickets.take(world.session, world.user("alice"),
                        ticket.ticket_id).assignee.username == "alice"


def test_resolving_needs_a_note_and_records_it(world, policy):
    ticket = incident(world, policy)
    with pytest.raises(InvalidInput, match="note is required"):
        tickets.resolve(world.session, world.user("oscar"), ticket.ticket_id, "   ")
    resolved = tickets.resolve(world.session, world.user("oscar"), ticket.ticket_id,
                               "restarted nginx")
    world.session.commit()
    assert (resolved.status, resolved.resolution_note, resolved.assignee.username) == (
        TicketStatus.resolved, "restarted nginx", "oscar")
    assert resolved.resolved_at is not None


def test_only_the_assignee_or_an_admin_resolves_a_taken_ticket(world, policy):
    ticket = incident(world, policy)
    tickets.take(world.session, world.user("olga"), ticket.ticket_id)
    world.session.commit()
    with pytest.raises(NotAllowed, match="assigned to @olga"):
        tickets.resolve(world.session, world.user("oscar"), ticket.ticket_id, "done")
    assert tickets.resolve(world.session, world.user("alice"), ticket.ticket_id,
                           "done").status == TicketStatus.resolved


def test_the_assignee_closes_their_ticket_but_other_operators_cannot(world, policy):
    ticket = incident(world, policy)
    tickets.resolve(world.session, world.user("olga"), ticket.ticket_id, "done")
    world.session.commit()
    with pytest.raises(NotAllowed, match="Only an admin"):
        tickets.close(world.session, world.user("oscar"), ticket.ticket_id)
    closed = tickets.close(world.session, world.user("olga"), ticket.ticket_id)
    assert closed.status == TicketStatus.closed


def test_an_admin_closes_any_ticket_with_a_reason(world, policy):
    ticket = incident(world, policy)
    closed = tickets.close(world.session, world.user("alice"), ticket.ticket_id,
                           note="duplicate of another incident")
    world.session.commit()
    assert closed.status == TicketStatus.closed
    assert closed.resolution_note == "duplicate of another incident"
    with pytest.raises(InvalidState, match="already closed"):
        tickets.close(world.session, world.user("alice"), ticket.ticket_id)


def test_a_resolved_ticket_cannot_be_taken_or_resolved_again(world, policy):
    ticket = incident(world, policy)
    tickets.resolve(world.session, world.user("oscar"), ticket.ticket_id, "done")
    world.session.commit()
    with pytest.raises(InvalidState, match="already resolved"):
        tickets.take(world.session, world.user("olga"), ticket.ticket_id)
    with pytest.raises(InvalidState, match="already resolved"):
        tickets.resolve(world.session, world.user("oscar"), ticket.ticket_id, "again")


def test_approval_requests_are_not_taken_resolved_or_closed_here(world, policy):
    result = jobs.launch(world.session, world.user("oscar"), playbook="ping", target="prod-01",
                         raw_vars={}, check_mode=False, request_key=None, channel_id=None,
                         policy=policy)
    world.session.commit()
    ref = result.approval_tickets[0].ticket_id
    with pytest.raises(InvalidState, match="approval request"):
        tickets.take(world.session, world.user("oscar"), ref)
    with pytest.raises(InvalidState, match="approval request"):
        tickets.close(world.session, world.user("alice"), ref)


def test_the_queue_lists_open_work_most_urgent_first_then_oldest(world, policy):
    # given incidents of each priority, created in a mixed order
    medium_old = incident(world, policy, target="web-01")
    critical = incident(world, policy, target="prod-01")
    high = incident(world, policy, target="web-02")
    medium_new = incident(world, policy, target="web-01")
    done = incident(world, policy, target="prod-02")
    medium_old.created_at = utcnow() - timedelta(hours=2)
    tickets.resolve(world.session, world.user("oscar"), done.ticket_id, "fixed")
    tickets.take(world.session, world.user("oscar"), high.ticket_id)
    world.session.commit()
    # when
    queue = tickets.queue(world.session, kind=TicketKind.incident)
    # then
    assert [t.id for t in queue] == [critical.id, high.id, medium_old.id, medium_new.id]


def test_tickets_can_be_listed_by_status_and_assignee(world, policy):
    first = incident(world, policy)
    incident(world, policy, target="web-02")
    tickets.take(world.session, world.user("olga"), first.ticket_id)
    world.session.commit()
    mine = tickets.list_tickets(world.session, assignee_id=world.user("olga").id)
    assert [t.id for t in mine] == [first.id]
    assert len(tickets.list_tickets(world.session, status=TicketStatus.open)) == 1


def test_an_unknown_ticket_is_explained(world):
    with pytest.raises(UnknownTicket):
        tickets.get_ticket(world.session, "0badc0de")


def test_two_operators_taking_a_ticket_at_once_get_one_owner(world, policy, session_factory):
    import threading

    from db.models import User

    ticket = incident(world, policy)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def take(name: str) -> None:
        with session_factory() as session:
            actor = session.scalars(select(User).where(User.username == name)).one()
            tickets.get_ticket(session, ticket.ticket_id)  # both saw it open
            barrier.wait(timeout=10)
            try:
                tickets.take(session, actor, ticket.ticket_id)
                session.commit()
                outcomes[name] = "taken"
            except InvalidState as exc:
                session.rollback()
                outcomes[name] = str(exc)

    threads = [threading.Thread(target=take, args=(n,)) for n in ("oscar", "olga")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winner = next(n for n, o in outcomes.items() if o == "taken")
    loser = next(o for o in outcomes.values() if o != "taken")
    assert f"already taken by @{winner}" in loser
