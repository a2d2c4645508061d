"""The role table: every role against every action, allowed and denied, with a useful message."""

from __future__ import annotations

import pytest

from core import permissions as p
from core.errors import InactiveUser, NotAllowed
from db.models import Role, User

READS = [p.JOB_VIEW, p.LOG_VIEW, p.TICKET_VIEW, p.SERVER_VIEW, p.PLAYBOOK_VIEW, p.STATS_VIEW]
OPERATOR_ACTIONS = [p.JOB_LAUNCH, p.JOB_RETRY, p.TICKET_TAKE, p.TICKET_RESOLVE]
ADMIN_ACTIONS = [p.APPROVAL_DECIDE, p.AUDIT_VIEW, p.USER_MANAGE, p.SERVER_MANAGE,
                 p.PLAYBOOK_MANAGE, p.JOB_ARCHIVE, p.FREEZE_MANAGE,
                 p.NOTIFICATION_ROUTE, p.TICKET_ASSIGN]
OWNED = [p.JOB_CANCEL, p.TICKET_CLOSE, p.TEMPLATE_MANAGE]

EXPECTED = {  # action -> (viewer, operator, admin) on someone else's resource
    **{a: (True, True, True) for a in READS},
    **{a: (False, True, True) for a in OPERATOR_ACTIONS},
    **{a: (False, False, True) for a in ADMIN_ACTIONS + OWNED},
}


def person(role: Role, *, user_id: int = 1, active: bool = True) -> User:
    return User(id=user_id, username=f"{role.value}-{user_id}", role=role, is_active=active)


def test_the_table_covers_every_action():
    assert set(EXPECTED) == set(p.RULES)


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_exactly_what_the_table_says(role, action):
    # given someone of this role acting on a resource owned by someone else
    user = person(role)
    allowed = EXPECTED[action][[Role.viewer, Role.operator, Role.admin].index(role)]
    # then
    assert p.can(user, action, owner_id=99) is allowed
    if allowed:
        p.require(user, action, owner_id=99)
    else:
        with pytest.raises(NotAllowed):
            p.require(user, action, owner_id=99)


@pytest.mark.parametrize("action", OWNED)
def test_an_operator_may_cancel_and_close_what_is_their_own(action):
    operator = person(Role.operator, user_id=7)
    p.require(operator, action, owner_id=7)


@pytest.mark.parametrize("action", OWNED)
def test_a_viewer_may_not_even_act_on_their_own(action):
    with pytest.raises(NotAllowed, match="operator role"):
        p.require(person(Role.viewer, user_id=7), action, owner_id=7)


def test_a_denial_names_the_role_needed_and_the_users_role():
    with pytest.raises(NotAllowed) as caught:
        p.require(person(Role.viewer), p.JOB_LAUNCH)
    assert "operator role" in str(caught.value) and "you are a viewer" in str(caught.value)


def test_an_operator_cancelling_someone_elses_job_is_told_only_admins_can():
    with pytest.raises(NotAllowed, match="Only an admin can cancel someone else's job"):
        p.require(person(Role.operator, user_id=1), p.JOB_CANCEL, owner_id=2)


def test_an_operator_approving_is_told_it_needs_an_admin():
    with pytest.raises(NotAllowed, match="admin role"):
        p.require(person(Role.operator), p.APPROVAL_DECIDE)


@pytest.mark.parametrize("role", list(Role))
def test_a_deactivated_user_may_do_nothing_at_all(role):
    user = person(role, active=False)
    assert not p.can(user, p.JOB_VIEW)
    with pytest.raises(InactiveUser, match="deactivated"):
        p.require(user, p.JOB_VIEW)


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown action"):
        p.require(person(Role.admin), "job.teleport")
