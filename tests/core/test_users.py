"""Users and roles as operators manage them: clear refusals, audited changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import users
from core.errors import InvalidInput, UnknownUser
from db.models import AuditLog, Role

CLI = {"via": "cli", "os_user": "tester"}


def audit_rows(session, action: str) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_an_added_user_is_active_with_the_role_and_the_addition_is_audited(session):
    user = users.add_user(session, "alice", slack_user_id="U0ALICE", role="operator",
                          email="alice@example.com", origin=CLI)
    session.commit()

    assert (user.username, user.role, user.is_active) == ("alice", Role.operator, True)
    [row] = audit_rows(session, "user.add")
    assert (row.resource_type, row.resource_id, row.user_id) == ("user", "alice", None)
    assert row.details["via"] == "cli" and row.details["role"] == "operator"


def test_a_duplicate_username_is_refused_naming_the_existing_user(session):
    users.add_user(session, "alice", slack_user_id="U0ALICE", role="viewer")
    session.commit()

    with pytest.raises(InvalidInput, match="A user named `alice` already exists"):
        users.add_user(session, "ALICE", slack_user_id="U0OTHER", role="viewer")


def test_a_slack_id_already_taken_names_its_owner_and_how_to_change_their_role(session):
    users.add_user(session, "auto-provisioned", slack_user_id="U0BOB", role="viewer")
    session.commit()

    with pytest.raises(InvalidInput) as error:
        users.add_user(session, "bob", slack_user_id="U0BOB", role="operator")

    assert "already belongs to `auto-provisioned`" in str(error.value)
    assert "playbot users set-role auto-provisioned operator" in str(error.value)


def test_an_email_already_taken_is_refused(session):
    users.add_user(session, "alice", slack_user_id="U0ALICE", role="viewer", email="a@x.io")
    session.commit()

    with pytest.raises(InvalidInput, match="already belongs to `alice`"):
        users.add_user(session, "al", slack_user_id="U0AL", role="viewer", email="A@x.io")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"username": "bad name"}, "Invalid username"),
    ({"username": ""}, "Invalid username"),
    ({"slack_user_id": "u0lower"}, "Did you mean U0LOWER?"),
    ({"slack_user_id": "not an id"}, "Invalid Slack user id"),
    ({"slack_user_id": ""}, "A Slack user id is required"),
    ({"role": "superuser"}, "Unknown role `superuser`: use one of admin, operator, viewer"),
    ({"email": "nope"}, "Invalid email address"),
])
def test_malformed_input_is_refused_with_a_clear_reason(kwargs, message):
    values = {"username": "carol", "slack_user_id": "U0CAROL", "role": "viewer", "email": None}
    values.update(kwargs)
    username = values.pop("username")

    with pytest.raises(InvalidInput, match=message):
        users.add_user(None, username, **values)  # type: ignore[arg-type]  # refused before any query


def test_a_mistyped_role_suggests_the_closest():
    with pytest.raises(InvalidInput) as error:
        users.parse_role("opertor")

    assert error.value.suggestions == ["operator"]


def test_set_role_changes_the_role_and_audits_before_and_after(session):
    users.add_user(session, "olga", slack_user_id="U0OLGA", role="viewer")

    user = users.set_role(session, "olga", "admin", origin=CLI)
    session.commit()

    assert user.role == Role.admin
    [row] = audit_rows(session, "user.set_role")
    assert (row.details["from"], row.details["to"]) == ("viewer", "admin")


def test_setting_the_same_role_again_changes_nothing_and_writes_no_audit_row(session):
    users.add_user(session, "olga", slack_user_id="U0OLGA", role="operator")

    users.set_role(session, "olga", "operator")

    assert audit_rows(session, "user.set_role") == []


def test_an_unknown_user_is_refused_with_the_closest_usernames(session):
    users.add_user(session, "oscar", slack_user_id="U0OSCAR", role="operator")

    with pytest.raises(UnknownUser) as error:
        users.set_role(session, "oskar", "admin")

    assert error.value.suggestions == ["oscar"]
    assert "No user named `oskar`" in str(error.value)


def test_deactivate_and_activate_flip_the_user_and_are_audited(session):
    users.add_user(session, "ivan", slack_user_id="U0IVAN", role="operator")

    assert users.deactivate_user(session, "ivan", origin=CLI).is_active is False
    assert users.deactivate_user(session, "ivan").is_active is False  # no second change
    assert users.activate_user(session, "ivan").is_active is True
    session.commit()

    assert len(audit_rows(session, "user.deactivate")) == 1
    assert len(audit_rows(session, "user.activate")) == 1


def test_list_users_filters_by_role_and_activity(session):
    users.add_user(session, "b-admin", slack_user_id="U0BBB", role="admin")
    users.add_user(session, "a-viewer", slack_user_id="U0AAA", role="viewer")
    users.add_user(session, "c-gone", slack_user_id="U0CCC", role="viewer")
    users.deactivate_user(session, "c-gone")

    assert [u.username for u in users.list_users(session)] == ["a-viewer", "b-admin", "c-gone"]
    assert [u.username for u in users.list_users(session, role="viewer", active_only=True)] == [
        "a-viewer"]
