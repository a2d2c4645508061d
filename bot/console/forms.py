"""Modals as a short terminal form.

`FormFiller.fill(modal, person)` shows the modal's title and text, then asks for each input
block in turn: a select's options are numbered (answer with the number or the option's
name), a checkbox is a yes/no question, text and number fields are typed (empty keeps the
default). An input that dispatches actions (the run-playbook modal's playbook select) sends
Slack's `block_actions` for it at once; when the app rebuilds the modal in answer
(`views.update`), the form continues with the new fields and keeps the answers given so far.
Submitting sends a real `view_submission`; field errors the app returns in its ack are
shown and those fields asked again. `cancel` at any question closes the modal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.console.conversation import Conversation, Modal
from bot.console.render import BlockRenderer
from bot.console.screen import Screen
from bot.console.slack_requests import Person, SlackRequests

Ask = Callable[[str], str]
MAX_ROUNDS = 8
TEXT_TYPES = frozenset({"plain_text_input", "email_text_input", "url_text_input", "datepicker",
                        "timepicker", "number_input", "users_select", "conversations_select",
                        "channels_select", "external_select", "rich_text_input"})
SELECT_TYPES = frozenset({"static_select", "radio_buttons"})
MULTI_TYPES = frozenset({"checkboxes", "multi_static_select"})


class FormCancelled(Exception):
    """The user typed `cancel` while filling in a form."""


@dataclass
class FormOutcome:
    """How a form ended: submitted (and accepted), cancelled, or refused with field errors."""

    submitted: bool
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Field:
    block_id: str
    label: str
    element: dict[str, Any]
    optional: bool
    hint: str
    dispatch: bool

    @property
    def kind(self) -> str:
        return str(self.element.get("type") or "")

    @property
    def action_id(self) -> str:
        return str(self.element.get("action_id") or "")


class FormFiller:
    """Asks for a modal's fields on the terminal and sends what Slack would send."""

    def __init__(self, screen: Screen, conversation: Conversation, requests: SlackRequests,
                 renderer: BlockRenderer, settle: Callable[[], None], *,
                 scripted: bool = False) -> None:
        self.scripted = scripted  # answers come from a script: never ask the same thing twice
        self.screen = screen
        self.conversation = conversation
        self.requests = requests
        self.renderer = renderer
        self.settle = settle

    def fill(self, modal: Modal, person: Person, ask: Ask) -> FormOutcome:
        """Run the form until it is submitted and accepted, or cancelled."""
        style = self.screen.style
        answers: dict[str, dict[str, Any]] = {}
        redo: set[str] | None = None  # after field errors: only these fields again
        shown_version = -1
        try:
            for _round in range(MAX_ROUNDS * 4):
                if modal.version != shown_version:
                    self._show_text(modal, header=shown_version < 0)
                    shown_version = modal.version
                fields = input_fields(modal.view)
                if not fields and not modal.view.get("submit"):
                    # read only (Slack shows just its Close button): shown, then closed
                    self.conversation.close_modal(modal.id)
                    self.screen.show(style.dim(f"  ▣ {modal.title}: closed"))
                    return FormOutcome(submitted=False)
                restart = False
                for item in fields:
                    if item.block_id in answers and (redo is None or item.block_id not in redo):
                        continue
                    if redo is not None and item.block_id not in redo:
                        continue
                    answers[item.block_id] = self._ask(item, answers.get(item.block_id), ask)
                    if item.dispatch:
                        version = modal.version
                        self.requests.view_action(person, modal, item.block_id, item.element,
                                                  self._state(modal, answers),
                                                  _action_answer(answers[item.block_id]))
                        self.settle()
                        if modal.version != version:
                            restart = True
                            break
                if restart:
                    continue
                response = self.requests.submit(person, modal, self._state(modal, answers))
                ack = _json(response.body)
                if response.status != 200:
                    self.screen.show(style.red(f"  the app answered HTTP {response.status}"))
                    return FormOutcome(submitted=False, errors={"": f"HTTP {response.status}"})
                action = ack.get("response_action") if isinstance(ack, dict) else None
                if action == "errors":
                    errors = {str(k): str(v) for k, v in (ack.get("errors") or {}).items()}
                    labels = {f.block_id: f.label for f in fields}
                    for block_id, message in errors.items():
                        self.screen.show(style.red(f"  ✗ {labels.get(block_id, block_id)}: "
                                                   f"{message}"))
                    if self.scripted:
                        self.conversation.close_modal(modal.id)
                        return FormOutcome(submitted=False, errors=errors)
                    redo = set(errors) & {f.block_id for f in fields} or None
                    if redo is None:
                        return FormOutcome(submitted=False, errors=errors)
                    continue
                if action in ("update", "push") and isinstance(ack.get("view"), dict):
                    modal.view = {**ack["view"], "id": modal.id}
                    modal.version += 1
                    answers, redo = {}, None
                    continue
                self.conversation.close_modal(modal.id)
                self.screen.show(style.dim(f"  ▣ {modal.title}: submitted"))
                self.settle()
                return FormOutcome(submitted=True)
        except (FormCancelled, KeyboardInterrupt):  # `cancel`, or Ctrl-C while answering
            self.requests.close(person, modal, self._state(modal, answers))
            self.conversation.close_modal(modal.id)
            self.screen.show(style.dim(f"  ▣ {modal.title}: cancelled"))
            return FormOutcome(submitted=False)
        self.conversation.close_modal(modal.id)
        return FormOutcome(submitted=False, errors={"": "the form kept changing"})

    # showing ---------------------------------------------------------------------------
    def _show_text(self, modal: Modal, header: bool) -> None:
        style = self.screen.style
        lines = []
        if header and not modal.view.get("submit") and not input_fields(modal.view):
            lines.append(style.bold(f"▣ {modal.title}") + style.dim("  (read only)"))
        elif header:
            submit = (modal.view.get("submit") or {}).get("text") or "Submit"
            lines.append(style.bold(f"▣ {modal.title}") + style.dim(
                f"  (answer each question; empty keeps the default; `cancel` closes; "
                f"then it is sent as “{submit}”)"))
        for block in modal.view.get("blocks") or []:
            if block.get("type") in ("input", "actions"):
                continue
            lines.extend("  " + line for line in self.renderer.render("", [block]).lines)
        self.screen.show(lines)

    # asking ----------------------------------------------------------------------------
    def _ask(self, item: Field, previous: dict[str, Any] | None, ask: Ask) -> dict[str, Any]:
        kind = item.kind
        if kind in SELECT_TYPES:
            return self._ask_select(item, previous, ask)
        if kind in MULTI_TYPES:
            return self._ask_multi(item, previous, ask)
        return self._ask_text(item, previous, ask)

    def _question(self, item: Field, default: str | None) -> str:
        style = self.screen.style
        notes = [note for note in ("optional" if item.optional else "", _as_note(item.hint))
                 if note]
        extra = style.dim(f" ({'; '.join(notes)})") if notes else ""
        current = f" [{default}]" if default not in (None, "") else ""
        return f"  {item.label}{extra}{current}: "

    def _read(self, prompt: str, ask: Ask) -> str:
        answer = ask(prompt).strip()
        if answer.lower() in ("cancel", "/cancel"):
            raise FormCancelled
        return answer

    def _ask_text(self, item: Field, previous: dict[str, Any] | None, ask: Ask) -> dict[str, Any]:
        element = item.element
        default = _text_value(previous) if previous else _initial_text(element)
        while True:
            answer = self._read(self._question(item, default), ask)
            value = answer or default
            if not value and not item.optional:
                self.screen.show(self.screen.style.red("    this field is required"))
                if self.scripted:
                    return _text_state(element, None)
                continue
            if value and item.kind == "number_input" and not _is_number(
                    value, bool(element.get("is_decimal_allowed"))):
                self.screen.show(self.screen.style.red("    please type a number"))
                if self.scripted:
                    return _text_state(element, value)
                continue
            return _text_state(element, value or None)

    def _options(self, item: Field) -> list[dict[str, Any]]:
        element = item.element
        options = element.get("options") or [
            opt for group in element.get("option_groups") or [] for opt in group.get("options")
            or []]
        return list(options)

    def _show_options(self, options: list[dict[str, Any]]) -> None:
        lines = []
        for number, opt in enumerate(options, 1):
            label = self.renderer.text_object(opt.get("text"))
            desc = self.renderer.text_object(opt.get("description")) if opt.get(
                "description") else []
            extra = self.screen.style.dim(f" — {' '.join(desc)}") if desc else ""
            lines.append(f"    {number}) {' '.join(label)}{extra}")
        self.screen.show(lines)

    def _pick(self, options: list[dict[str, Any]], answer: str) -> dict[str, Any] | None:
        if answer.isdigit() and 1 <= int(answer) <= len(options):
            return options[int(answer) - 1]
        wanted = answer.lower()
        for opt in options:
            label = " ".join(self.renderer.text_object(opt.get("text"))).lower()
            if wanted in (str(opt.get("value", "")).lower(), label):
                return opt
        return None

    def _ask_select(self, item: Field, previous: dict[str, Any] | None, ask: Ask
                    ) -> dict[str, Any]:
        options = self._options(item)
        chosen = (previous or {}).get("selected_option") or item.element.get("initial_option")
        default = _option_label(self.renderer, chosen) if chosen else None
        self._show_options(options)
        while True:
            answer = self._read(self._question(item, default), ask)
            if not answer:
                if chosen or item.optional:
                    return {"type": item.kind, "selected_option": chosen}
                self.screen.show(self.screen.style.red("    please choose one (type its number)"))
                if self.scripted:
                    return {"type": item.kind, "selected_option": None}
                continue
            picked = self._pick(options, answer)
            if picked is None:
                self.screen.show(self.screen.style.red(
                    f"    no option {answer!r}: type its number (1 to {len(options)}) or its "
                    "name"))
                if self.scripted:
                    return {"type": item.kind, "selected_option": None}
                continue
            return {"type": item.kind, "selected_option": picked}

    def _ask_multi(self, item: Field, previous: dict[str, Any] | None, ask: Ask
                   ) -> dict[str, Any]:
        options = self._options(item)
        chosen = list((previous or {}).get("selected_options")
                      or item.element.get("initial_options") or [])
        if len(options) == 1:  # a single checkbox: a yes/no question
            default = "y" if chosen else "n"
            label = " ".join(self.renderer.text_object(options[0].get("text")))
            about = options[0].get("description")
            if about:
                self.screen.show(self.screen.style.dim(
                    "    " + " ".join(self.renderer.text_object(about))))
            while True:
                answer = self._read(f"  {label}? [{'Y/n' if chosen else 'y/N'}]: ", ask).lower()
                answer = answer or default
                if answer in ("y", "yes", "true", "1"):
                    return {"type": item.kind, "selected_options": [options[0]]}
                if answer in ("n", "no", "false", "0"):
                    return {"type": item.kind, "selected_options": []}
                self.screen.show(self.screen.style.red("    answer y or n"))
                if self.scripted:
                    return {"type": item.kind, "selected_options": chosen}
        self._show_options(options)
        default = ",".join(str(options.index(o) + 1) for o in chosen if o in options)
        while True:
            answer = self._read(self._question(item, default or None).removesuffix(": ")
                                + " (numbers, comma-separated): ", ask)
            if not answer:
                return {"type": item.kind, "selected_options": chosen}
            picked = [self._pick(options, part.strip()) for part in answer.split(",")]
            if all(picked):
                return {"type": item.kind, "selected_options": picked}
            self.screen.show(self.screen.style.red("    type option numbers, e.g. 1,3"))
            if self.scripted:
                return {"type": item.kind, "selected_options": chosen}

    # state -----------------------------------------------------------------------------
    def _state(self, modal: Modal, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """`view.state.values` as Slack sends it: every input, answered or initial."""
        values: dict[str, Any] = {}
        for item in input_fields(modal.view):
            answer = answers.get(item.block_id) or _initial_state(item.element)
            values[item.block_id] = {item.action_id: answer}
        return values


def input_fields(view: dict[str, Any]) -> list[Field]:
    """The questions of a view: its input blocks (and selects in actions blocks), in order."""
    fields: list[Field] = []
    for index, block in enumerate(view.get("blocks") or []):
        block_id = str(block.get("block_id") or f"b{index}")
        if block.get("type") == "input" and isinstance(block.get("element"), dict):
            element = block["element"]
            fields.append(Field(
                block_id=block_id,
                label=str((block.get("label") or {}).get("text") or block_id),
                element=element,
                optional=bool(block.get("optional")),
                hint=str((block.get("hint") or {}).get("text") or ""),
                dispatch=bool(block.get("dispatch_action")),
            ))
        elif block.get("type") == "actions":
            for element in block.get("elements") or []:
                if element.get("type") in SELECT_TYPES | MULTI_TYPES:
                    placeholder = (element.get("placeholder") or {}).get("text") or "Choose"
                    fields.append(Field(block_id=block_id, label=str(placeholder),
                                        element=element, optional=True, hint="", dispatch=True))
    return fields


def _initial_state(element: dict[str, Any]) -> dict[str, Any]:
    kind = element.get("type")
    if kind in SELECT_TYPES:
        return {"type": kind, "selected_option": element.get("initial_option")}
    if kind in MULTI_TYPES:
        return {"type": kind, "selected_options": list(element.get("initial_options") or [])}
    return _text_state(element, _initial_text(element))


def _initial_text(element: dict[str, Any]) -> str | None:
    for key in ("initial_value", "initial_date", "initial_time", "initial_user",
                "initial_conversation", "initial_channel"):
        if element.get(key) not in (None, ""):
            return str(element[key])
    return None


def _text_state(element: dict[str, Any], value: str | None) -> dict[str, Any]:
    kind = element.get("type")
    key = {"datepicker": "selected_date", "timepicker": "selected_time",
           "users_select": "selected_user", "conversations_select": "selected_conversation",
           "channels_select": "selected_channel"}.get(str(kind), "value")
    return {"type": kind, key: value}


def _text_value(state: dict[str, Any]) -> str | None:
    for key in ("value", "selected_date", "selected_time", "selected_user",
                "selected_conversation", "selected_channel"):
        if state.get(key) not in (None, ""):
            return str(state[key])
    return None


def _action_answer(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a block_actions action that carries the chosen value."""
    return {k: v for k, v in state.items() if k != "type"}


def _option_label(renderer: BlockRenderer, option: dict[str, Any]) -> str:
    return " ".join(renderer.text_object(option.get("text"))) or str(option.get("value"))


def _is_number(value: str, decimal: bool) -> bool:
    try:
        float(value) if decimal else int(value)
    except ValueError:
        return False
    return True


def _json(body: str) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _as_note(hint: str) -> str:
    """A form hint as a note in parentheses after the label: no closing period, and a lower-case
    start unless it begins with a name or an acronym ("A hostname…" → "a hostname…")."""
    note = hint.strip().rstrip(".")
    if len(note) > 1 and note[0].isupper() and not note[1].isupper() and note.split(" ")[0] in (
            "A", "An", "The", "One", "Any", "Your", "Leave", "Give", "Type", "Optional"):
        note = note[0].lower() + note[1:]
    return note
