"""The run-playbook modal's round trip: open it, rebuild it for the chosen playbook, check and
submit it.

1. `/run-playbook` with no arguments (or App Home's button) opens the modal with the trigger.
2. Choosing a playbook sends a block action: the view is updated with that playbook's
   declared variables as typed fields (`views.update`, guarded by the view's hash).
3. Submitting runs `check_submission` before the ack — database reads only — so bad values
   come back as field errors (`response_action: errors`) and the modal stays open.
4. After the ack `submit` launches like the command does, keyed by the view id so a double
   submission starts one run.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from core import extra_vars, permissions, playbook_registry, targets
from core import templates as core_templates
from core.errors import InvalidVars, NotFound, PlaybotError
from handlers.chat import Action, perform, record_refusal
from handlers.launching import launch_from_chat
from handlers.listeners import Ctx
from handlers.replies import slack_error
from slackui import ids
from slackui.modals import decode_metadata, read_run_form, run_playbook_modal, var_block_id
from slackui.templates import with_template_picker

log = logging.getLogger(__name__)
MAX_FIELD_ERROR = 300


def open_run_modal(ctx: Ctx, *, source: str) -> None:
    """Open the modal (operators and admins; the denial is audited and explained)."""
    action = Action("job.launch_form", "playbook", details={"source": source})

    def work(session: Session, user: Any) -> list[Any]:
        permissions.require(user, permissions.JOB_LAUNCH)
        return playbook_registry.list_playbooks(session)

    playbooks = perform(ctx.deps, ctx.caller, action, work)
    view = with_template_picker(
        run_playbook_modal(playbooks, metadata={"channel": ctx.caller.channel_id}),
        _templates(ctx))
    try:
        ctx.client.views_open(trigger_id=ctx.caller.trigger_id, view=view)
    except SlackApiError as exc:
        if slack_error(exc) not in ("expired_trigger_id", "invalid_trigger_id"):
            raise
        ctx.reply.ephemeral(":hourglass: Slack took too long to let me open the form. "
                            "Please try `/run-playbook` again.")


def playbook_selected(ctx: Ctx) -> None:
    """Rebuild the modal for the playbook just chosen (its variables as fields)."""
    name = (ctx.action.get("selected_option") or {}).get("value")
    view = ctx.view
    form = read_run_form((view.get("state") or {}).get("values") or {})
    with ctx.deps.session_factory() as session:
        playbooks = playbook_registry.list_playbooks(session)
        selected = next((p for p in playbooks if p.name == name), None)
    updated = with_template_picker(
        run_playbook_modal(playbooks, selected=selected, target=form.target or None,
                           check_mode=form.check_mode,
                           metadata=decode_metadata(view.get("private_metadata"))),
        _templates(ctx))
    try:
        ctx.client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=updated)
    except SlackApiError as exc:
        if slack_error(exc) != "hash_conflict":
            raise
        log.info("modal %s changed meanwhile; skipped an outdated update", view.get("id"))


def _templates(ctx: Ctx) -> list[Any]:
    """The job templates the form offers to start from (its "Run a template" picker)."""
    with ctx.deps.session_factory() as session:
        found = core_templates.list_templates(session)
        for template in found:
            _ = (template.playbook.name, template.target)
        return found


def check_submission(ctx: Ctx) -> dict[str, str] | None:
    """Field errors of a submitted modal ({block_id: message}), or None when it may run.

    Runs before the ack: reads only (the session is rolled back), no Slack or queue calls.
    """
    form = read_run_form((ctx.view.get("state") or {}).get("values") or {})
    if not form.playbook:
        return {ids.BLOCK_RUN_PLAYBOOK: "Choose a playbook."}
    if not form.target:
        return {ids.BLOCK_RUN_TARGET: "Give a hostname, tag:<tag>, env:<environment> or "
                                      "group:<group>."}
    errors: dict[str, str] = {}
    with ctx.deps.session_factory() as session:
        try:
            playbook = playbook_registry.get_playbook(session, form.playbook)
        except NotFound as exc:
            return {ids.BLOCK_RUN_PLAYBOOK: _short(str(exc))}
        try:
            extra_vars.validate(playbook, form.raw_vars, source="modal")
        except InvalidVars as exc:
            errors.update(field_errors(exc, playbook.variables or {}))
        try:
            targets.resolve_target(session, form.target, limit=ctx.deps.policy.max_targets)
        except PlaybotError as exc:
            errors[ids.BLOCK_RUN_TARGET] = _short(str(exc))
        session.rollback()
    return errors or None


def submit(ctx: Ctx) -> None:
    """Launch what the modal asked for (after the ack), unless the check refused it."""
    form = read_run_form((ctx.view.get("state") or {}).get("values") or {})
    errors = ctx.precheck.get("errors")
    if errors:
        refusal = InvalidVars("; ".join(f"{k}: {v}" for k, v in errors.items()))
        record_refusal(ctx.deps, ctx.caller, Action(
            "job.launch", "playbook", form.playbook,
            details={"target": form.target, "source": "modal"}), refusal)
        return
    metadata = decode_metadata(ctx.view.get("private_metadata"))
    ctx = ctx.in_channel(metadata.get("channel"))
    caller = ctx.caller
    launch_from_chat(
        ctx, playbook=form.playbook or "", target=form.target, raw_vars=form.raw_vars,
        check_mode=form.check_mode, channel_id=metadata.get("channel"), source="modal",
        request_key=f"view:{caller.team_id}:{ctx.view.get('id')}")


def field_errors(error: InvalidVars, declared: dict[str, Any]) -> dict[str, str]:
    """InvalidVars as modal field errors: each listed problem on the field of the variable it
    names (in backticks), the rest on the playbook field."""
    message = str(error)
    lines = [line.lstrip("• ").strip() for line in message.splitlines()[1:]] or [message]
    errors: dict[str, list[str]] = {}
    for line in lines:
        named = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", line)
        name = next((n for n in named if n in declared), None)
        if name is None:
            errors.setdefault(ids.BLOCK_RUN_PLAYBOOK, []).append(line)
            continue
        # under the variable's own field its name (and the playbook's) is said already: keep
        # only what comes after "`name`: "
        own = re.sub(rf"^.*?`{re.escape(name)}`:\s*", "", line, count=1)
        errors.setdefault(var_block_id(name), []).append(own[:1].upper() + own[1:])
    return {block: _short(" ".join(problems)) for block, problems in errors.items()}


def _short(text: str) -> str:
    """A field error as Slack shows it: plain text (no mrkdwn), cut to Slack's limit."""
    text = re.sub(r"`([^`]*)`", r"“\1”", text)
    text = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", text)
    return text if len(text) <= MAX_FIELD_ERROR else text[: MAX_FIELD_ERROR - 1] + "…"
