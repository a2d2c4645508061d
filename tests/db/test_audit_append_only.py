"""audit_logs is append-only at the database: UPDATE and DELETE fail on SQLite and MariaDB,
whoever sends them; only the ERD's ON DELETE SET NULL of a deleted user gets through."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DatabaseError

from db.models import AuditLog, User
from tests.db.seed import World, add_audit


@pytest.fixture
def audited(session):
    """A committed audit row about server web-N, written by alice."""
    world = World.create(session)
    row = add_audit(
        session,
        resource_type="server",
        resource_id=str(world.web.id),
        action="server.add",
        user=world.alice,
    )
    session.commit()
    return world, row.id


def _row(session, pk):
    session.rollback()
    return session.execute(
        select(AuditLog.user_id, AuditLog.action, AuditLog.details).where(AuditLog.id == pk)
    ).one()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_logs SET action = 'nothing.happened' WHERE id = :pk",
        "UPDATE audit_logs SET details = NULL WHERE id = :pk",
        "UPDATE audit_logs SET user_id = NULL WHERE id = :pk",  # erasing who did it
        "DELETE FROM audit_logs WHERE id = :pk",
        "DELETE FROM audit_logs",
    ],
    ids=["rewrite-action", "drop-details", "erase-actor", "delete-row", "delete-all"],
)
def test_database_refuses_to_change_or_remove_an_audit_row(session, audited, sql):
    # given an audit row
    world, pk = audited
    before = _row(session, pk)

    # when anyone sends UPDATE or DELETE straight to the database, then it fails
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(text(sql), {"pk": pk})
        session.commit()

    # and the row is exactly as it was
    assert _row(session, pk) == before


def test_orm_updates_and_deletes_of_audit_rows_fail_too(session, audited):
    # given an audit row loaded through the ORM
    _, pk = audited
    row = session.get(AuditLog, pk)

    # when the ORM flushes a change to it, then the database refuses
    row.action = "tampered"
    with pytest.raises(DatabaseError, match="append-only"):
        session.commit()
    session.rollback()

    # and deleting it through the ORM fails the same way
    session.delete(session.get(AuditLog, pk))
    with pytest.raises(DatabaseError, match="append-only"):
        session.commit()
    session.rollback()
    assert session.get(AuditLog, pk).action == "server.add"


def test_core_statements_cannot_bypass_the_trigger(session, audited):
    _, pk = audited
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(update(AuditLog).where(AuditLog.id == pk).values(resource_id="x"))
    session.rollback()
    with pytest.raises(DatabaseError, match="append-only"):
        session.execute(delete(AuditLog).where(AuditLog.id == pk))
    session.rollback()
    assert session.get(AuditLog, pk).resource_id is not None


def test_new_audit_rows_can_always_be_added(session, audited):
    world, _ = audited
    add_audit(session, resource_type="job", resource_id="42", user=world.bob)
    session.commit()
    assert session.scalar(select(AuditLog.id).where(AuditLog.resource_id == "42")) is not None


def test_deleting_a_user_keeps_their_audit_rows_with_the_actor_set_null(session, audited):
    # given a user with an audit row and no jobs or tickets (RESTRICT would keep the user)
    world, pk = audited
    carol = User(username="carol-gone", email="carol@example.com")
    session.add(carol)
    session.flush()
    own = add_audit(session, resource_type="user", resource_id=str(carol.id), user=carol)
    session.commit()

    # when the user is deleted
    session.delete(carol)
    session.commit()

    # then the audit row stays, with user_id NULL (ERD: ON DELETE SET NULL), unchanged else
    assert _row(session, own.id) == (None, "job.launch", {"outcome": "allowed"})
    # and other users' rows are untouched
    assert _row(session, pk)[0] == world.alice.id
