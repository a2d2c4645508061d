"""Job templates: a saved launch (playbook, target, variables, check mode) run by its name.

Guarantees:
- A template's variables are validated against its playbook's declarations when it is
  saved (`save_template`) and again, with the launch's overrides, every time it runs
  (`launch_template`): what runs always fits the playbook as registered now.
- A launch may set only the variables the template lists as overridable; anything else is
  refused, naming the ones it may set.
- A template runs through `core.jobs.launch`, so roles, approvals, freezes, dedup by
  request key and the job audit rows are exactly those of `/run-playbook`.
- A template whose playbook changed since it was saved says so when used (`TemplateLaunch.
  notes`); one whose playbook was deactivated or removed is refused, saying so.
- Operators save and remove their own templates, admins anyone's (`template.manage`);
  any operator may run any template. Every change is audited (`template.add`,
  `template.update`, `template.remove`), and every run (`template.run`).
Nothing here commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit, extra_vars, permissions
from core import jobs as core_jobs
from core.audit import RequestInfo
from core.errors import (
    InvalidInput,
    InvalidState,
    InvalidVars,
    UnknownPlaybook,
    UnknownTemplate,
)
from core.playbook_registry import get_playbook
from core.suggestions import closest
from core.targets import resolve_target
from db.models import JobTemplate, Playbook, Schedule, User

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_HELP = "lower-case letters, digits, `.`, `_` and `-`, at most 64 characters"


@dataclass
class TemplateLaunch:
    """What running a template produced: the launch, the template, and what the user should
    be told about it (e.g. its playbook changed since the template was saved)."""

    result: core_jobs.LaunchResult
    template: JobTemplate
    notes: list[str] = field(default_factory=list)


def normal_name(name: str) -> str:
    """The template name as stored (lower case); raises InvalidInput when malformed."""
    text = (name or "").strip().lower()
    if not NAME_PATTERN.fullmatch(text):
        raise InvalidInput(f"`{text[:70] or '(empty)'}` is not a valid template name "
                           f"({NAME_HELP}).")
    return text


def save_template(session: Session, actor: User | None, *, name: str, playbook: str,
                  target: str, raw_vars: Mapping[str, Any], check_mode: bool = False,
                  overridable: Iterable[str] = (), description: str | None = None,
                  owner: User | None = None, replace: bool = False, max_targets: int = 50,
                  origin: Mapping[str, Any] | None = None,
                  request: RequestInfo | None = None) -> JobTemplate:
    """Create a template, or (`replace`) change an existing one of that name.

    actor: who saves it (None: the CLI, which must name the `owner`). The owner must be an
    operator or admin; only an admin saves a template for someone else or changes another's.
    The variables are validated (`core.extra_vars.validate`, required ones included); each
    overridable name must be a variable the playbook declares (or accepts, with free vars);
    the target must name active servers now.

    Raises NotAllowed, InvalidInput (bad name, name taken without `replace`), UnknownTemplate
    (`replace` of a template that does not exist), UnknownPlaybook, InvalidVars, UnknownServer.
    """
    owner = owner or actor
    if owner is None:
        raise InvalidInput("A template needs an owner (an operator or admin).")
    permissions.require(owner, permissions.JOB_LAUNCH)
    if actor is not None:
        permissions.require(actor, permissions.TEMPLATE_MANAGE, owner_id=owner.id)
    key = normal_name(name)
    existing = _find(session, key)
    if existing is not None and not replace:
        raise InvalidInput(f"A template named `{key}` already exists (owner "
                           f"@{existing.owner.username}). Choose another name, or replace it.")
    if existing is None and replace:
        raise _unknown(session, key)
    if existing is not None and actor is not None:
        permissions.require(actor, permissions.TEMPLATE_MANAGE, owner_id=existing.owner_id)
    book = get_playbook(session, playbook)
    given = dict(raw_vars)
    typed = extra_vars.validate(book, given, source="template")
    kept = {k: typed[k] for k in given if k in typed}
    allowed = _overridable(book, overridable)
    resolve_target(session, target, limit=max_targets)
    template = existing or JobTemplate(name=key)
    before = describe(existing) if existing is not None else None
    template.description = (description or "").strip()[:2000] or None
    template.playbook_id = book.id
    template.playbook = book
    template.target = target.strip()[:255]
    template.variables = kept
    template.check_mode = bool(check_mode)
    template.overridable = allowed
    template.owner_id = owner.id
    template.owner = owner
    template.playbook_hash = book.file_hash
    if existing is None:
        session.add(template)
    session.flush()
    details: dict[str, Any] = {**(origin or {}), **describe(template)}
    if before is not None:
        details["before"] = before
    audit.record(session, user=actor, action="template.update" if existing else "template.add",
                 resource_type="template", resource_id=template.name, details=details,
                 request=request)
    return template


def remove_template(session: Session, actor: User | None, name: str, *,
                    origin: Mapping[str, Any] | None = None,
                    request: RequestInfo | None = None) -> JobTemplate:
    """Delete a template (its owner or an admin; the CLI as the system). Audited
    (`template.remove`, with what it was). Raises NotAllowed, UnknownTemplate."""
    template = get_template(session, name)
    if actor is not None:
        permissions.require(actor, permissions.TEMPLATE_MANAGE, owner_id=template.owner_id)
    scheduled = list(session.scalars(select(Schedule.name)
                                     .where(Schedule.template_id == template.id)))
    if scheduled:
        raise InvalidState(f"Template `{template.name}` is used by schedule "
                           f"{', '.join(f'`{n}`' for n in scheduled)}; remove "
                           f"{'it' if len(scheduled) == 1 else 'them'} first.")
    details = {**(origin or {}), **describe(template)}
    session.delete(template)
    session.flush()
    audit.record(session, user=actor, action="template.remove", resource_type="template",
                 resource_id=template.name, details=details, request=request)
    return template


def get_template(session: Session, name: str) -> JobTemplate:
    """The template `name` (case-insensitive); raises UnknownTemplate with the closest names."""
    key = (name or "").strip().lower()
    template = _find(session, key) if key else None
    if template is None:
        raise _unknown(session, key)
    return template


def list_templates(session: Session) -> list[JobTemplate]:
    """Every template, by name."""
    return list(session.scalars(select(JobTemplate).order_by(JobTemplate.name)).unique())


def playbook_state(template: JobTemplate) -> str | None:
    """Why the template's playbook is not as it was when the template was saved, or None:
    "deactivated" (its file left the playbook directory) or "changed" (re-synced since)."""
    if not template.playbook.is_active:
        return "deactivated"
    if template.playbook.file_hash != template.playbook_hash:
        return "changed"
    return None


def launch_template(session: Session, actor: User, name: str, overrides: Mapping[str, Any], *,
                    request_key: str | None, channel_id: str | None,
                    policy: core_jobs.LaunchPolicy, request: RequestInfo | None = None,
                    source: str = "chat", now: datetime | None = None,
                    with_previews: bool = True) -> TemplateLaunch:
    """Run a template as `actor`, with `overrides` of its overridable variables.

    Launches through `core.jobs.launch` (the same rules as `/run-playbook`) and audits
    `template.run`. Raises NotAllowed, UnknownTemplate, UnknownPlaybook (its playbook is gone),
    InvalidVars (a variable it may not override, or its variables no longer fit the
    playbook), PlaybookChanged (the file changed on disk since the last sync), and what
    `core.jobs.launch` raises. now: the moment freezes are checked at (a schedule's clock);
    with_previews: as `core.jobs.launch`.
    """
    permissions.require(actor, permissions.JOB_LAUNCH)
    template = get_template(session, name)
    book = template.playbook
    state = playbook_state(template)
    if state == "deactivated":
        raise UnknownPlaybook(
            f"Template `{template.name}` runs playbook `{book.name}`, which is no longer "
            "registered (its file left the playbook directory). Ask its owner "
            f"@{template.owner.username} or an admin to save it with another playbook, or "
            "remove it.")
    refused = sorted(set(overrides) - set(template.overridable or []))
    if refused:
        may = ", ".join(f"`{k}`" for k in template.overridable or []) or "none"
        raise InvalidVars(f"Template `{template.name}` does not let a launch set "
                          f"{', '.join(f'`{k}`' for k in refused)}. Variables it lets you set: "
                          f"{may}.")
    notes = []
    if state == "changed":
        notes.append(f":warning: Playbook `{book.name}` changed since template "
                     f"`{template.name}` was saved; its variables were checked again against "
                     "the playbook's current declarations.")
    merged = {**(template.variables or {}), **overrides}
    try:
        result = core_jobs.launch(
            session, actor, playbook=book.name, target=template.target, raw_vars=merged,
            check_mode=template.check_mode, request_key=request_key, channel_id=channel_id,
            policy=policy, request=request, now=now, with_previews=with_previews)
    except InvalidVars as exc:
        changed = " (it changed since the template was saved)" if state == "changed" else ""
        raise InvalidVars(f"Template `{template.name}` no longer fits playbook "
                          f"`{book.name}`{changed}: {exc}") from exc
    if not result.duplicate:
        audit.record(session, user=actor, action="template.run", resource_type="template",
                     resource_id=template.name, request=request,
                     details={"run_id": result.run_id, "overrides": dict(overrides),
                              "playbook": book.name, "target": template.target,
                              "playbook_changed": state == "changed", "source": source,
                              "jobs": [j.job_id for j in result.jobs]})
    return TemplateLaunch(result=result, template=template, notes=notes)


def describe(template: JobTemplate) -> dict[str, Any]:
    """A template as plain data (what audit rows, `show` and `--json` print)."""
    return {"name": template.name, "description": template.description,
            "playbook": template.playbook.name, "target": template.target,
            "variables": dict(template.variables or {}), "check_mode": template.check_mode,
            "overridable": list(template.overridable or []),
            "owner": template.owner.username, "playbook_hash": template.playbook_hash}


# internals ------------------------------------------------------------------------------


def _find(session: Session, key: str) -> JobTemplate | None:
    return session.scalars(select(JobTemplate).where(func.lower(JobTemplate.name) == key)
                           ).unique().first()


def _unknown(session: Session, key: str) -> UnknownTemplate:
    names = list(session.scalars(select(JobTemplate.name)))
    hint = "" if names else " There are no templates yet: `/templates add` saves one."
    return UnknownTemplate(f"There is no template named `{key[:70]}`.{hint}",
                           suggestions=closest(key, names))


def _overridable(book: Playbook, names: Iterable[str]) -> list[str]:
    wanted = sorted({str(n).strip() for n in names if str(n).strip()})
    declared = dict(book.variables or {})
    problems = []
    for name in wanted:
        reason = extra_vars.forbidden_reason(name)
        if reason:
            problems.append(f"`{name}` can never be set from chat: {reason}.")
        elif declared.get(name, {}).get("secret"):
            problems.append(f"`{name}` is a secret variable: the worker supplies it.")
        elif name not in declared and not book.allow_free_vars:
            near = closest(name, list(declared))
            hint = f" (did you mean {', '.join(f'`{n}`' for n in near)}?)" if near else ""
            problems.append(f"`{name}` is not a variable of playbook `{book.name}`{hint}.")
    if problems:
        raise InvalidVars("Overridable variables: " + " ".join(problems))
    return wanted
