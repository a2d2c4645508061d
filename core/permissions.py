"""Who may do what: the role table of product.md as data, and the one check everyone calls.

    viewer    reads: jobs, job logs, tickets, servers, playbooks, statistics
    operator  + runs playbooks (also retries and check-mode runs), cancels their OWN jobs,
              takes and resolves tickets, closes tickets assigned to them
    admin     everything: approves/rejects production runs, reads the audit trail, cancels
              anyone's job, closes any ticket, manages users, servers and playbooks

Actions that depend on ownership ("cancel a job", "close a ticket") take `owner_id`: the
owner's id (the job's requester, the ticket's assignee). A lower role is enough for one's own.

`require(user, action, owner_id=...)` raises `NotAllowed` saying which role is needed, or
`InactiveUser` for a deactivated account. `can(...)` answers the same question as a bool.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InactiveUser, NotAllowed
from db.models import Role, User

# Reading.
JOB_VIEW = "job.view"
LOG_VIEW = "log.view"
TICKET_VIEW = "ticket.view"
SERVER_VIEW = "server.view"
PLAYBOOK_VIEW = "playbook.view"
STATS_VIEW = "stats.view"
# Running and handling.
JOB_LAUNCH = "job.launch"
JOB_RETRY = "job.retry"
JOB_CANCEL = "job.cancel"
TICKET_TAKE = "ticket.take"
TICKET_RESOLVE = "ticket.resolve"
TICKET_CLOSE = "ticket.close"
TICKET_ASSIGN = "ticket.assign"
# Administration.
APPROVAL_DECIDE = "approval.decide"
AUDIT_VIEW = "audit.view"
USER_MANAGE = "user.manage"
SERVER_MANAGE = "server.manage"
PLAYBOOK_MANAGE = "playbook.manage"
JOB_ARCHIVE = "job.archive"
# Job templates (core.templates): operators keep their own, admins manage all.
TEMPLATE_MANAGE = "template.manage"
# Change freezes (core.freezes).
FREEZE_MANAGE = "freeze.manage"
# Notification routes of channels (core.notifications); one's own settings need JOB_VIEW.
NOTIFICATION_ROUTE = "notification.route"

RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Rule:
    """The least role for an action; `own` is the least role when the user owns the resource."""

    role: Role
    what: str  # "cancel someone else's job": used in the denial message
    own: Role | None = None
    own_what: str | None = None


RULES: dict[str, Rule] = {
    JOB_VIEW: Rule(Role.viewer, "view jobs"),
    LOG_VIEW: Rule(Role.viewer, "view job logs"),
    TICKET_VIEW: Rule(Role.viewer, "view tickets"),
    SERVER_VIEW: Rule(Role.viewer, "view servers"),
    PLAYBOOK_VIEW: Rule(Role.viewer, "view playbooks"),
    STATS_VIEW: Rule(Role.viewer, "view statistics"),
    JOB_LAUNCH: Rule(Role.operator, "run playbooks"),
    JOB_RETRY: Rule(Role.operator, "retry jobs"),
    JOB_CANCEL: Rule(Role.admin, "cancel someone else's job", own=Role.operator,
                     own_what="cancel your jobs"),
    TICKET_TAKE: Rule(Role.operator, "take tickets"),
    TICKET_RESOLVE: Rule(Role.operator, "resolve tickets"),
    TICKET_ASSIGN: Rule(Role.admin, "assign tickets to someone"),
    TICKET_CLOSE: Rule(Role.admin, "close a ticket that is not assigned to you",
                       own=Role.operator, own_what="close tickets"),
    APPROVAL_DECIDE: Rule(Role.admin, "approve or reject production runs"),
    AUDIT_VIEW: Rule(Role.admin, "read the audit trail"),
    USER_MANAGE: Rule(Role.admin, "manage users"),
    SERVER_MANAGE: Rule(Role.admin, "manage servers"),
    PLAYBOOK_MANAGE: Rule(Role.admin, "manage playbooks"),
    JOB_ARCHIVE: Rule(Role.admin, "archive jobs"),
    TEMPLATE_MANAGE: Rule(Role.admin, "change someone else's job template", own=Role.operator,
                          own_what="save job templates"),
    FREEZE_MANAGE: Rule(Role.admin, "add or end change freezes"),
    NOTIFICATION_ROUTE: Rule(Role.admin, "route notifications to a channel"),
}

_ARTICLE = {Role.viewer: "a viewer", Role.operator: "an operator", Role.admin: "an admin"}


def _rule(action: str) -> Rule:
    try:
        return RULES[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}; see core.permissions.RULES") from None


def needed_role(action: str, *, owns: bool = False) -> Role:
    """The least role that may do `action` (on one's own resource when `owns`)."""
    rule = _rule(action)
    return rule.own if owns and rule.own is not None else rule.role


def can(user: User, action: str, *, owner_id: int | None = None) -> bool:
    """Whether `user` (active) may do `action`; `owner_id` for ownership-dependent actions."""
    if not user.is_active:
        return False
    owns = owner_id is not None and owner_id == user.id
    return RANK[user.role] >= RANK[needed_role(action, owns=owns)]


def require(user: User, action: str, *, owner_id: int | None = None) -> None:
    """Raise unless `user` may do `action`.

    Raises InactiveUser for a deactivated account, NotAllowed (naming the role needed and
    the user's own role) otherwise.
    """
    if not user.is_active:
        raise InactiveUser(inactive_message(user))
    if can(user, action, owner_id=owner_id):
        return
    rule = _rule(action)
    owns = owner_id is not None and owner_id == user.id
    needed = needed_role(action, owns=owns)
    what = rule.own_what if owns and rule.own_what else rule.what
    if rule.own is not None and not owns and RANK[user.role] >= RANK[rule.own]:
        raise NotAllowed(f"Only an admin can {what}; you are {_ARTICLE[user.role]}.")
    raise NotAllowed(
        f"You need the {needed.value} role (or higher) to {what}; you are "
        f"{_ARTICLE[user.role]}. Ask an admin if you need it."
    )


def inactive_message(user: User) -> str:
    """What a deactivated user is told."""
    return (f"Your Playbot account ({user.username}) is deactivated, so Playbot cannot act "
            "for you. Ask an admin to reactivate it.")


def table() -> list[tuple[str, str, str]]:
    """The role table as rows (action, least role, least role on one's own resource or "")."""
    return [(action, rule.role.value, rule.own.value if rule.own else "")
            for action, rule in RULES.items()]
