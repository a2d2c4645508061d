"""`/run-template <name> [key=value ...]` and `/templates [show|add|remove]`, plus the Run
button of a template (in `/templates` and on App Home).

    /templates                                   list (with Run buttons)
    /templates show <name>
    /templates add <name> <playbook> <target> [key=value ...] [--check]
                   [--override=a,b] [--description="..."] [--replace]
    /templates remove <name>

Running a template is `core.templates.launch_template` (the launch path of
`/run-playbook`: roles, approvals, dedup by request key), announced like any run; a note
says when the template's playbook changed since it was saved.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from core import extra_vars, permissions
from core import templates as core_templates
from core.errors import InvalidInput
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.launching import finish_launch, loaded
from handlers.listeners import Ctx, on_action, on_command
from handlers.parsing import split_words, unknown
from slackui import ids
from slackui.blocks import escape, plain, section
from slackui.modals import decode_metadata
from slackui.templates import template_details_blocks, template_list_blocks

log = logging.getLogger(__name__)
RUN_USAGE = "/run-template <name> [key=value ...]"
ADD_USAGE = ("/templates add <name> <playbook> <target> [key=value ...] [--check] "
             "[--override=a,b] [--description=\"...\"] [--replace]")
SUBCOMMANDS = ("show", "add", "remove", "list")


def run_ack_text(text: str) -> str | None:
    words = text.split()
    if not words:
        return None
    return f":inbox_tray: Received: template *{escape(words[0][:64])}*…"


def run_template_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words:
        list_templates(ctx)
        return
    name, *assignments = words
    caller = ctx.caller
    run_template(ctx, name, extra_vars.parse_assignments(assignments),
                 request_key=f"tmpl:{caller.team_id}:{caller.trigger_id}", source="command")


def run_template(ctx: Ctx, name: str, overrides: dict[str, str], *, request_key: str,
                 source: str) -> None:
    """Launch template `name` from chat and announce its run where the request came from."""
    channel_id = ctx.caller.channel_id
    action = Action("template.run", "template", name, audited_by_core=True,
                    details={"overrides": dict(overrides), "source": source})

    def work(session: Session, user: Any) -> Any:
        launched = core_templates.launch_template(
            session, user, name, overrides, request_key=request_key, channel_id=channel_id,
            policy=ctx.deps.policy, request=ctx.caller.request, source=source)
        loaded(launched.result)
        return launched

    launched = perform(ctx.deps, ctx.caller, action, work)
    for note in launched.notes:
        ctx.reply.ephemeral(note)
    finish_launch(ctx, launched.result, channel_id)


def templates_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if not words or words[0].lower() == "list":
        list_templates(ctx)
        return
    sub, *rest = words
    sub = sub.lower()
    if sub == "show":
        if len(rest) != 1:
            raise InvalidInput("Which template? e.g. `/templates show deploy-web`.")
        show_template(ctx, rest[0])
    elif sub == "add":
        add_template(ctx, rest)
    elif sub == "remove":
        if len(rest) != 1:
            raise InvalidInput("Which template? e.g. `/templates remove deploy-web`.")
        remove_template(ctx, rest[0])
    else:
        raise unknown(sub, SUBCOMMANDS, "subcommand", "/templates [show|add|remove] ...")


def list_templates(ctx: Ctx) -> None:
    action = Action("templates.list", "template")

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.PLAYBOOK_VIEW)
        found = core_templates.list_templates(session)
        states = {t.name: core_templates.playbook_state(t) for t in found}
        return found, states, permissions.can(user, permissions.JOB_LAUNCH)

    found, states, runnable = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Job templates", template_list_blocks(found, states, runnable=runnable))


def show_template(ctx: Ctx, name: str) -> None:
    action = Action("template.show", "template", name)

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.PLAYBOOK_VIEW)
        template = core_templates.get_template(session, name)
        action.resource_id = template.name
        return template, core_templates.playbook_state(template)

    template, state = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Template {template.name}", template_details_blocks(template, state))


def add_template(ctx: Ctx, words: list[str]) -> None:
    options, positional = _options(words)
    if len(positional) < 3 or any("=" in w for w in positional[:3]):
        raise InvalidInput(f"Please give a name, a playbook and a target. Usage: `{ADD_USAGE}`"
                           " — e.g. `/templates add deploy-web deploy tag:web version=1.2 "
                           "--override=version`.")
    name, playbook, target, *assignments = positional
    raw_vars = extra_vars.parse_assignments(assignments)
    replace = "replace" in options
    action = Action("template.update" if replace else "template.add", "template", name,
                    audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        template = core_templates.save_template(
            session, user, name=name, playbook=playbook, target=target, raw_vars=raw_vars,
            check_mode="check" in options,
            overridable=[k for k in options.get("override", "").split(",") if k.strip()],
            description=options.get("description"), replace=replace,
            max_targets=ctx.deps.policy.max_targets, request=ctx.caller.request)
        return template, core_templates.playbook_state(template)

    template, state = perform(ctx.deps, ctx.caller, action, work)
    verb = "Updated" if replace else "Saved"
    ctx.reply.ephemeral(f":white_check_mark: {verb} template *{escape(template.name)}*.",
                        template_details_blocks(template, state))


def remove_template(ctx: Ctx, name: str) -> None:
    action = Action("template.remove", "template", name, audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        return core_templates.remove_template(session, user, name, request=ctx.caller.request
                                              ).name

    removed = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f":wastebasket: Removed template *{escape(removed)}*.")


def template_run_clicked(ctx: Ctx) -> None:
    """The Run button of a template, or App Home's template picker: launch it as saved (no
    overrides)."""
    name = str(ctx.action.get("value")
               or (ctx.action.get("selected_option") or {}).get("value") or "")
    trigger = ctx.caller.trigger_id or ctx.action.get("action_ts")
    run_template(ctx, name, {}, request_key=f"tmplbtn:{ctx.caller.team_id}:{trigger}",
                 source="button")


def template_picked_in_form(ctx: Ctx) -> None:
    """The run form's template picker: run the chosen template as saved where the form was
    opened, and close the form (its view becomes a short confirmation)."""
    name = str((ctx.action.get("selected_option") or {}).get("value") or "")
    view = ctx.view
    metadata = decode_metadata(view.get("private_metadata"))
    here = ctx.in_channel(metadata.get("channel"))
    run_template(here, name, {}, request_key=f"tmplform:{ctx.caller.team_id}:{view.get('id')}",
                 source="form")
    done = {"type": "modal", "title": plain("Run a playbook", 24), "close": plain("Close", 24),
            "blocks": [section(f":inbox_tray: Received: template *{escape(name)}*, as saved.")]}
    try:
        ctx.client.views_update(view_id=view.get("id"), view=done)
    except SlackApiError as exc:
        log.info("could not close the run form %s: %s", view.get("id"), exc)


def _options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--check`, `--replace`, `--override=a,b`, `--description=text` and the other words."""
    flags = {"--check": "check", "--check-mode": "check", "--replace": "replace"}
    valued = {"--override": "override", "--description": "description"}
    options: dict[str, str] = {}
    rest: list[str] = []
    for word in words:
        if not word.startswith("--"):
            rest.append(word)
            continue
        flag, sep, value = word.partition("=")
        if flag in flags and not sep:
            options[flags[flag]] = "yes"
        elif flag in valued and sep:
            options[valued[flag]] = value
        elif flag in valued:
            raise InvalidInput(f"`{flag}` needs a value, e.g. `{flag}=...`.")
        else:
            raise unknown(flag, [*flags, *valued], "option", ADD_USAGE)
    return options, rest


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_RUN_TEMPLATE, run_template_command, ack_text=run_ack_text)
    on_command(app, deps, ids.CMD_TEMPLATES, templates_command)
    on_action(app, deps, ids.ACTION_TEMPLATE_RUN, template_run_clicked)
    on_action(app, deps, ids.ACTION_MODAL_TEMPLATE_SELECT, template_picked_in_form)

