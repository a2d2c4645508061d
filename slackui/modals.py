"""Modals: run a playbook (typed fields for its declared variables), resolve a ticket,
reject an approval request (its reason).

The run-playbook modal has one input block per declared variable, typed by the declaration:
choice → static select, boolean → checkbox, integer/number → number input, anything else
(string, list) → text input. Secret variables are never asked for: the modal says where the
worker takes them from. `read_run_form()` turns a submitted view's state back into the same
plain `key → text` mapping a slash command produces, so both paths share core validation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from db.models import Playbook, Ticket
from slackui import ids
from slackui.blocks import Block, context, escape, option, plain, section, short_id
from slackui.limits import (
    MAX_INPUT_LABEL,
    MAX_PLACEHOLDER,
    MAX_PRIVATE_METADATA,
    MAX_SELECT_OPTIONS,
    MAX_VIEW_BLOCKS,
    truncate,
)

TARGET_PLACEHOLDER = "web-01, tag:web, env:staging or group:webservers"
FIXED_BLOCKS = 6  # playbook, description, target, check mode, notes: room kept for them


def var_block_id(name: str) -> str:
    return ids.BLOCK_VAR_PREFIX + name


def secret_env_name(name: str) -> str:
    """The environment variable the worker reads a secret variable from."""
    return "PLAYBOT_VAR_" + name.upper()


def run_playbook_modal(playbooks: Sequence[Playbook], *, selected: Playbook | None = None,
                       target: str | None = None, check_mode: bool = False,
                       metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run-playbook modal; with `selected`, its declared variables as typed fields."""
    blocks: list[Block] = [_playbook_select(playbooks, selected)]
    if len(playbooks) > MAX_SELECT_OPTIONS:
        blocks.append(context(f"Showing {MAX_SELECT_OPTIONS} of {len(playbooks)} playbooks; "
                              "type `/run-playbook &lt;name&gt; &lt;target&gt;` for the others."))
    if selected is not None and selected.description:
        blocks.append(context(escape(selected.description)))
    blocks.append(_input(ids.BLOCK_RUN_TARGET, "Target", _text_input(target, TARGET_PLACEHOLDER),
                         hint="A hostname, tag:<tag>, env:<environment> or "
                              "group:<group>."))
    if selected is None:
        blocks.append(section("Pick a playbook to see its variables."))
    else:
        blocks.extend(_variable_blocks(selected.variables or {}))
    check = {"type": "checkboxes", "action_id": ids.ACTION_INPUT_VALUE,
             "options": [option("Check mode: show what would change, change nothing",
                                ids.CHECK_MODE_VALUE)]}
    if check_mode:
        check["initial_options"] = [check["options"][0]]
    blocks.append(_input(ids.BLOCK_RUN_CHECK, "Check mode", check, optional=True,
                         hint="Check mode is not read-only: on production it needs approval "
                              "too, unless the playbook is declared check-safe."))
    return {
        "type": "modal",
        "callback_id": ids.VIEW_RUN_PLAYBOOK,
        "title": plain("Run a playbook", 24),
        "submit": plain("Run", 24),
        "close": plain("Cancel", 24),
        "private_metadata": encode_metadata(metadata or {}),
        "blocks": blocks[:MAX_VIEW_BLOCKS],
    }


def _playbook_select(playbooks: Sequence[Playbook], selected: Playbook | None) -> Block:
    options = [option(p.name, p.name, truncate(p.description or "", 75) or None)
               for p in playbooks[:MAX_SELECT_OPTIONS]]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": ids.ACTION_MODAL_PLAYBOOK_SELECT,
        "placeholder": plain("Choose a playbook", MAX_PLACEHOLDER),
        "options": options or [option("(no playbooks registered)", "-")],
    }
    if selected is not None:
        element["initial_option"] = option(selected.name, selected.name,
                                           truncate(selected.description or "", 75) or None)
    block = _input(ids.BLOCK_RUN_PLAYBOOK, "Playbook", element)
    block["dispatch_action"] = True  # choosing one sends a block action: the view is rebuilt
    return block


def _variable_blocks(variables: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    blocks: list[Block] = []
    secrets = [name for name, spec in variables.items() if (spec or {}).get("secret")]
    public = [name for name in variables if name not in secrets]
    room = MAX_VIEW_BLOCKS - FIXED_BLOCKS - 2
    shown = public[:room]
    for name in shown:
        blocks.append(_variable_block(name, variables[name] or {}))
    if len(public) > len(shown):
        blocks.append(context(f"{len(public) - len(shown)} more variables do not fit in a "
                              "modal: use `/run-playbook &lt;playbook&gt; &lt;target&gt; key=value …`."))
    if secrets:
        listed = ", ".join(f"`{escape(s)}` (from `{secret_env_name(s)}`)" for s in secrets)
        blocks.append(context(f":lock: Secret variables are never typed in Slack; the worker "
                              f"reads them from its environment: {listed}."))
    return blocks


def _variable_block(name: str, spec: Mapping[str, Any]) -> Block:
    kind = spec.get("type", "string")
    default = spec.get("default")
    required = bool(spec.get("required")) and default is None
    hint = spec.get("description")
    if kind == "choice":
        choices = [str(c) for c in spec.get("choices") or []][:MAX_SELECT_OPTIONS]
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": ids.ACTION_INPUT_VALUE,
            "placeholder": plain("Choose…", MAX_PLACEHOLDER),
            "options": [option(c, c) for c in choices] or [option("(no choices)", "-")],
        }
        if default is not None and str(default) in choices:
            element["initial_option"] = option(str(default), str(default))
    elif kind == "boolean":
        box = option(f"{name}: yes", ids.BOOLEAN_TRUE_VALUE)
        element = {"type": "checkboxes", "action_id": ids.ACTION_INPUT_VALUE, "options": [box]}
        if _truthy(default):
            element["initial_options"] = [box]
        required = False  # an unticked box is a valid answer ("false")
    elif kind in ("integer", "number"):
        element = {"type": "number_input", "action_id": ids.ACTION_INPUT_VALUE,
                   "is_decimal_allowed": kind == "number"}
        if spec.get("min") is not None:
            element["min_value"] = str(spec["min"])
        if spec.get("max") is not None:
            element["max_value"] = str(spec["max"])
        if default is not None:
            element["initial_value"] = str(default)
    else:
        placeholder = "comma,separated,values" if kind == "list" else None
        if kind == "list" and isinstance(default, list | tuple):
            default = ",".join(str(d) for d in default)
        element = _text_input(None if default is None else str(default), placeholder)
        if kind == "list":
            hint = f"{hint + ' · ' if hint else ''}Comma-separated list."
    return _input(var_block_id(name), name, element, optional=not required, hint=hint)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "yes", "1", "on")


def _text_input(initial: str | None, placeholder: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": ids.ACTION_INPUT_VALUE}
    if initial:
        element["initial_value"] = truncate(initial, 3000)
    if placeholder:
        element["placeholder"] = plain(placeholder, MAX_PLACEHOLDER)
    return element


def _input(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False,
           hint: str | None = None) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": plain(label, MAX_INPUT_LABEL),
                    "element": element, "optional": optional}
    if hint:
        block["hint"] = plain(hint, MAX_INPUT_LABEL)
    return block


# reading a submitted view -------------------------------------------------------------------


@dataclass
class RunForm:
    """What the user entered in the run-playbook modal, as text (validated by the core)."""

    playbook: str | None
    target: str
    raw_vars: dict[str, str] = field(default_factory=dict)
    check_mode: bool = False


def read_run_form(state_values: Mapping[str, Mapping[str, Any]]) -> RunForm:
    """Turn `view.state.values` into a RunForm. Empty optional fields are left out."""
    playbook = _element_value(state_values.get(ids.BLOCK_RUN_PLAYBOOK, {})
                              .get(ids.ACTION_MODAL_PLAYBOOK_SELECT, {}))
    target = _element_value(state_values.get(ids.BLOCK_RUN_TARGET, {})
                            .get(ids.ACTION_INPUT_VALUE, {})) or ""
    check = state_values.get(ids.BLOCK_RUN_CHECK, {}).get(ids.ACTION_INPUT_VALUE, {})
    raw: dict[str, str] = {}
    for block_id, actions in state_values.items():
        if not block_id.startswith(ids.BLOCK_VAR_PREFIX):
            continue
        element = actions.get(ids.ACTION_INPUT_VALUE, {})
        value = _element_value(element)
        if value is not None and value != "":
            raw[block_id.removeprefix(ids.BLOCK_VAR_PREFIX)] = value
    return RunForm(playbook=playbook if playbook != "-" else None, target=target.strip(),
                   raw_vars=raw, check_mode=bool(check.get("selected_options")))


def _element_value(element: Mapping[str, Any]) -> str | None:
    kind = element.get("type")
    if kind in ("static_select", "external_select"):
        selected = element.get("selected_option") or {}
        return selected.get("value")
    if kind == "checkboxes":
        chosen = element.get("selected_options") or []
        return "true" if chosen else "false"
    value = element.get("value")
    return None if value is None else str(value)


def encode_metadata(data: Mapping[str, Any]) -> str:
    """A view's private_metadata: compact JSON, within Slack's 3000 characters."""
    text = json.dumps(dict(data), separators=(",", ":"))
    if len(text) > MAX_PRIVATE_METADATA:
        raise ValueError("private_metadata too long")
    return text


def decode_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# resolve ticket -------------------------------------------------------------------------------


def resolve_ticket_modal(ticket: Ticket, *, metadata: Mapping[str, Any] | None = None
                         ) -> dict[str, Any]:
    """Ask for the resolution note of a ticket."""
    return _ticket_text_modal(ticket, ids.VIEW_RESOLVE_TICKET, "Resolve", ids.BLOCK_RESOLVE_NOTE,
                              "What fixed it?", 3000, metadata)


def read_resolve_note(state_values: Mapping[str, Mapping[str, Any]]) -> str:
    return _read_text(state_values, ids.BLOCK_RESOLVE_NOTE)


def reject_approval_modal(ticket: Ticket, *, metadata: Mapping[str, Any] | None = None
                          ) -> dict[str, Any]:
    """Ask for the reason of rejecting an approval request (required; shown on the card
    and the job: "Rejected by @x: reason")."""
    return _ticket_text_modal(ticket, ids.VIEW_REJECT_APPROVAL, "Reject", ids.BLOCK_REJECT_REASON,
                              "Why is it rejected?", 1000, metadata)


def read_reject_reason(state_values: Mapping[str, Mapping[str, Any]]) -> str:
    return _read_text(state_values, ids.BLOCK_REJECT_REASON)


def _ticket_text_modal(ticket: Ticket, callback_id: str, verb: str, block_id: str, label: str,
                       max_length: int, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """A modal about one ticket asking for one required text (a note, a reason)."""
    meta = {"ticket": ticket.ticket_id, **(metadata or {})}
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(f"{verb} {short_id(ticket.ticket_id)}", 24),
        "submit": plain(verb, 24),
        "close": plain("Cancel", 24),
        "private_metadata": encode_metadata(meta),
        "blocks": [
            section(f"*{escape(ticket.title)}*"),
            _input(block_id, label,
                   {"type": "plain_text_input", "action_id": ids.ACTION_INPUT_VALUE,
                    "multiline": True, "min_length": 3, "max_length": max_length}),
        ],
    }


def _read_text(state_values: Mapping[str, Mapping[str, Any]], block_id: str) -> str:
    element = state_values.get(block_id, {}).get(ids.ACTION_INPUT_VALUE, {})
    return (element.get("value") or "").strip()
