"""Job templates in Slack: the list (with Run buttons), one template in detail.

Every name, target, description and variable value is user text: it is escaped, never
Slack markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db.models import JobTemplate
from slackui import ids
from slackui.blocks import Block, button, context, escape, fields, header, option, section
from slackui.limits import MAX_MESSAGE_BLOCKS, MAX_VIEW_BLOCKS, cap_blocks, more_note, take

LIST_LIMIT = 30
USAGE = ("`/run-template <name> [key=value ...]` · `/templates show <name>` · "
         "`/templates add <name> <playbook> <target> [key=value ...] [--check] "
         "[--override=a,b] [--description=\"...\"]` · `/templates remove <name>`")


def state_note(state: str | None) -> str:
    """What a template's playbook state means to its user."""
    if state == "deactivated":
        return ":no_entry: its playbook is no longer registered"
    if state == "changed":
        return ":warning: its playbook changed since it was saved"
    return ""


def vars_text(variables: Mapping[str, Any]) -> str:
    return ", ".join(f"`{escape(k)}={escape(v)}`" for k, v in sorted(variables.items())) or "—"


def template_line(template: JobTemplate, state: str | None = None) -> str:
    check = " · check mode" if template.check_mode else ""
    note = state_note(state)
    return (f"*{escape(template.name)}* · {escape(template.playbook.name)} on "
            f"`{escape(template.target)}`{check} · @{escape(template.owner.username)}"
            + (f" · {note}" if note else "")
            + (f"\n{escape(template.description)}" if template.description else ""))


def template_list_blocks(templates: Sequence[JobTemplate],
                         states: Mapping[str, str | None] | None = None, *,
                         runnable: bool = True) -> list[Block]:
    """The templates, one section each with a Run button (for those who may launch)."""
    states = states or {}
    shown, hidden = take(templates, LIST_LIMIT)
    blocks: list[Block] = [header("Job templates")]
    if not shown:
        blocks.append(section("No templates yet."))
    for template in shown:
        accessory = (button("Run", ids.ACTION_TEMPLATE_RUN, template.name)
                     if runnable and states.get(template.name) != "deactivated" else None)
        blocks.append(section(template_line(template, states.get(template.name)),
                              accessory=accessory))
    if hidden:
        blocks.append(context(more_note(hidden, "more templates")))
    blocks.append(context(escape(USAGE)))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)


def template_details_blocks(template: JobTemplate, state: str | None = None) -> list[Block]:
    """One template: what it runs, its variables, what a launch may override."""
    blocks: list[Block] = [
        header(f"Template {template.name}"),
        fields([
            ("Playbook", escape(template.playbook.name)),
            ("Target", f"`{escape(template.target)}`"),
            ("Variables", vars_text(template.variables or {})),
            ("A launch may set", ", ".join(f"`{escape(k)}`" for k in template.overridable or [])
             or "nothing"),
            ("Check mode", "yes" if template.check_mode else "no"),
            ("Owner", f"@{escape(template.owner.username)}"),
        ]),
    ]
    if template.description:
        blocks.append(section(escape(template.description)))
    if state:
        blocks.append(context(state_note(state)))
    blocks.append(context(f"`/run-template {escape(template.name)} [key=value ...]`"))
    return blocks


def template_picker_blocks(templates: Sequence[JobTemplate]) -> list[Block]:
    """App Home's "Run a template" picker: a static select of the templates (choosing one
    runs it as saved)."""
    options = [option(t.name[:75], t.name, f"{t.playbook.name} on {t.target}"[:75])
               for t in templates[:100]]
    select: Block = {"type": "static_select", "action_id": ids.ACTION_TEMPLATE_RUN,
                     "placeholder": {"type": "plain_text", "text": "Run a template…"},
                     "options": options}
    return [section("*Job templates*: choose one to run it as saved "
                    "(`/run-template &lt;name&gt; key=value` to set its variables).",
                    accessory=select, block_id="home_templates")]


def with_template_picker(view: dict[str, Any], templates: Sequence[JobTemplate]
                         ) -> dict[str, Any]:
    """The run-playbook modal with a "Run a template" picker on top (choosing one runs that
    template as saved and closes the form); unchanged when there are no templates."""
    if not templates:
        return view
    options = [option(t.name[:75], t.name, f"{t.playbook.name} on {t.target}"[:75])
               for t in templates[:100]]
    select: Block = {"type": "static_select", "action_id": ids.ACTION_MODAL_TEMPLATE_SELECT,
                     "placeholder": {"type": "plain_text", "text": "Run a template…"},
                     "options": options}
    picker = section("Or run a saved *job template* as it is:", accessory=select,
                     block_id="rp_template")
    blocks = [picker, *view.get("blocks", [])][:MAX_VIEW_BLOCKS]
    return {**view, "blocks": blocks}
