"""One chat action, done right: the caller resolved to a user, the core call in one transaction,
and exactly one audit row — for what was allowed and, in its own transaction after the
rollback, for what was denied or refused.

    action = Action("jobs.list", "job")
    jobs = perform(ctx.deps, ctx.caller, action, lambda session, user: ...)

`perform` re-raises the core's `PlaybotError` after auditing it, so the listener answers
with the error's message. A PlaybotError raised outside `perform` (a typo in a command's
words) is audited by the listener wrapper as a refused command — never twice: an audited
error carries `playbot_audited`. Permission checks themselves are the core's (`core.permissions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit, identity
from core.errors import ForeignWorkspace, PlaybotError, UnknownUser
from db.models import User
from db.retry import retrying
from db.session import transaction
from handlers.context import Caller
from handlers.deps import Deps

log = logging.getLogger(__name__)
T = TypeVar("T")
AUDITED_FLAG = "playbot_audited"  # set on a PlaybotError once its refusal is audited


@dataclass
class Action:
    """What the audit row says: `name` (e.g. "job.cancel"), the resource, details.

    The work function may fill in `resource_id` or add to `details` once it knows them.
    `audited_by_core` marks core calls that write their own audit row when they succeed
    (the denial of such a call is still audited here, after the rollback).
    """

    name: str
    resource_type: str
    resource_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    audited_by_core: bool = False


def resolve_user(session: Session, deps: Deps, caller: Caller) -> User:
    """The caller's `users` row (provisioned as viewer on first contact when allowed).

    Raises ForeignWorkspace, before anything is read, for a request from outside the install.
    """
    return identity.resolve_slack_user(session, caller.slack_user_id,
                                       display_name=caller.display_name,
                                       auto_provision=deps.auto_provision,
                                       install=deps.install or identity.Install(),
                                       origin=caller.origin)


def perform(deps: Deps, caller: Caller, action: Action,
            work: Callable[[Session, User], T]) -> T:
    """Run `work(session, user)` as the caller in one transaction and audit it.

    Raises the core's PlaybotError (after auditing the refusal in a fresh transaction).
    """
    if caller.is_retry:
        action.details.setdefault("slack_retry", caller.retry_num)
    try:
        return _attempt_retrying(deps, caller, action, work)
    except IntegrityError:
        # Two deliveries of one request raced on a unique key (e.g. jobs.request_key):
        # the other one committed first, so doing it again finds its result.
        log.info("retrying %s after a concurrent duplicate", action.name)
        try:
            return _attempt(deps, caller, action, work)
        except PlaybotError as exc:
            record_refusal(deps, caller, action, exc)
            raise
    except PlaybotError as exc:
        record_refusal(deps, caller, action, exc)
        raise


def _attempt_retrying(deps: Deps, caller: Caller, action: Action,
                      work: Callable[[Session, User], T]) -> T:
    """`_attempt`, again from the start when the database ended it as a deadlock or the
    like (`db.retry`): a cancel or approval racing a worker's claim is never refused for it."""
    for attempt in retrying():
        with attempt:
            return _attempt(deps, caller, action, work)
    raise AssertionError("unreachable: retrying() reraises")


def _attempt(deps: Deps, caller: Caller, action: Action,
             work: Callable[[Session, User], T]) -> T:
    with transaction(deps.session_factory) as session:
        user = resolve_user(session, deps, caller)
        result = work(session, user)
        if not action.audited_by_core:
            audit.record(session, user=user, action=action.name,
                         resource_type=action.resource_type, resource_id=action.resource_id,
                         details=action.details or None, request=caller.request)
        return result


def record_refusal(deps: Deps, caller: Caller, action: Action, error: PlaybotError) -> None:
    """Audit an action that was not carried out, in a fresh transaction (after the rollback).

    Denials (NotAllowed, inactive user) and refusals (unknown name, bad value, wrong state)
    alike get outcome "denied"; `details["reason"]` names which, `details["error"]` says why.
    """
    if getattr(error, AUDITED_FLAG, False):
        return
    details = {**action.details, "reason": type(error).__name__}
    foreign = isinstance(error, ForeignWorkspace)
    with transaction(deps.session_factory) as session:
        # A request from outside the install is never attributed to, nor makes, an account.
        user = None if foreign else session.scalar(
            select(User).where(User.slack_user_id == caller.slack_user_id))
        if user is None and deps.auto_provision and not foreign \
                and not isinstance(error, UnknownUser):
            # First contact with a refused request: the account it provisioned was rolled
            # back with the request; it is made here, so an admin can find and promote them.
            user = resolve_user(session, deps, caller)
        if user is None:
            details["slack_user_id"] = caller.slack_user_id
        if foreign and caller.user_team_id:
            details["user_team_id"] = caller.user_team_id
        audit.denied(session, user, action.name, action.resource_type, action.resource_id,
                     error, caller.request, details=details)
    setattr(error, AUDITED_FLAG, True)
