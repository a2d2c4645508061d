"""Who is asking: Slack users mapped to accounts, provisioned on first contact."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.errors import ForeignWorkspace, InactiveUser, UnknownUser
from core.identity import Install, Origin, check_origin, resolve_slack_user
from db.base import utcnow
from db.models import Role, User


def test_a_known_slack_user_gets_their_account(world):
    user = resolve_slack_user(world.session, "U_OSCAR", display_name="someone else")
    assert user.username == "oscar" and user.role == Role.operator


def test_resolving_records_the_login_time(world):
    before = utcnow() - timedelta(seconds=1)
    user = resolve_slack_user(world.session, "U_OSCAR")
    world.session.commit()
    assert user.last_login is not None and user.last_login >= before


def test_an_unknown_slack_user_is_provisioned_as_a_viewer_named_after_their_display_name(
        session):
    # when
    user = resolve_slack_user(session, "U_NEW", display_name="Zoë Smith",
                              email="zoe@example.com")
    session.commit()
    # then
    assert (user.username, user.role, user.slack_user_id, user.email) == (
        "zoe-smith", Role.viewer, "U_NEW", "zoe@example.com")
    assert user.is_active and user.last_login is not None


def test_a_request_that_fails_after_first_contact_leaves_no_account_behind(session_factory):
    # given: first contact is the first write of a request that then fails
    with session_factory() as session:
        resolve_slack_user(session, "U_NEW", display_name="zoe")
        session.rollback()
    # then: nothing was written (on SQLite too, where a bare SAVEPOINT would have committed)
    with session_factory() as session:
        assert session.scalar(select(User).where(User.slack_user_id == "U_NEW")) is None


def test_a_provisioned_user_is_found_again_and_not_duplicated(session):
    first = resolve_slack_user(session, "U_NEW", display_name="zoe")
    session.commit()
    again = resolve_slack_user(session, "U_NEW", display_name="zoe")
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(User)) == 1


def test_a_taken_username_gets_a_unique_variant(world):
    user = resolve_slack_user(world.session, "U_OTHER_OSCAR", display_name="oscar")
    assert user.username == "oscar-u_other_oscar"


def test_a_user_without_a_usable_display_name_is_named_after_their_slack_id(session):
    assert resolve_slack_user(session, "U0ABC", display_name="😀").username == "u0abc"


def test_an_email_already_used_by_another_account_is_not_taken_over(world):
    world.users["alice"].email = "alice@example.com"
    world.session.commit()
    user = resolve_slack_user(world.session, "U_MALLORY", display_name="mallory",
                              email="alice@example.com")
    assert user.email is None and user.role == Role.viewer


def test_a_deactivated_user_is_refused_with_a_clear_message(world):
    with pytest.raises(InactiveUser, match="deactivated.*Ask an admin"):
        resolve_slack_user(world.session, "U_IVAN")


def test_with_auto_provisioning_off_an_unknown_user_is_told_to_ask_an_admin(session):
    with pytest.raises(UnknownUser) as caught:
        resolve_slack_user(session, "U_NEW", display_name="zoe", auto_provision=False)
    assert "playbot users add" in str(caught.value) and "U_NEW" in str(caught.value)
    assert session.scalar(select(func.count()).select_from(User)) == 0


HOME = Install(team_id="T_HOME")
GRID = Install(team_id=None, enterprise_id="E_ORG")


@pytest.mark.parametrize(("install", "origin", "what"), [
    (HOME, Origin(team_id="T_OTHER"), "another Slack workspace"),
    (HOME, Origin(team_id=None), "another Slack workspace"),
    (HOME, Origin(team_id="T_HOME", user_team_id="T_OTHER"), "Slack Connect"),
    (GRID, Origin(team_id="T_ANY", enterprise_id="E_ELSEWHERE"), "another Slack organisation"),
    (GRID, Origin(team_id="T_ANY"), "another Slack organisation"),
])
def test_a_request_from_outside_the_install_is_refused(install, origin, what):
    with pytest.raises(ForeignWorkspace, match=what):
        check_origin(install, origin)


@pytest.mark.parametrize(("install", "origin"), [
    (HOME, Origin(team_id="T_HOME", user_team_id="T_HOME")),
    (GRID, Origin(team_id="T_ANY", enterprise_id="E_ORG", user_team_id="T_OTHER_OF_ORG")),
    (Install(), Origin(team_id="T_WHATEVER")),
])
def test_a_request_from_the_install_passes(install, origin):
    check_origin(install, origin)


def test_a_foreign_request_is_refused_before_anyone_is_provisioned(session):
    with pytest.raises(ForeignWorkspace):
        resolve_slack_user(session, "U_STRANGER", display_name="stranger", install=HOME,
                           origin=Origin(team_id="T_OTHER"))
    assert session.scalar(select(func.count()).select_from(User)) == 0


def test_a_request_without_a_slack_user_id_is_refused(session):
    with pytest.raises(UnknownUser):
        resolve_slack_user(session, "  ")


def test_two_first_requests_of_one_new_user_at_once_make_one_account(session_factory):
    # given two requests of a brand-new user, resolved concurrently
    barrier = threading.Barrier(2)
    ids: list[int] = []
    errors: list[BaseException] = []

    def first_contact() -> None:
        try:
            with session_factory() as session:
                session.execute(select(User.id)).all()  # both read "no such user" first
                barrier.wait(timeout=10)
                user = resolve_slack_user(session, "U_RACE", display_name="racer")
                session.commit()
                ids.append(user.id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_contact) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    # then both get the same account, and there is only one
    assert not errors, errors
    assert len(ids) == 2 and ids[0] == ids[1]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
