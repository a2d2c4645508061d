"""A modal that asks for one required text (a ticket's resolve note, a rejection's reason)
and then acts with it on the ticket its metadata names.

The text is checked in the ack, so an empty one keeps the modal open with the error under
its field; that refusal is audited after the ack, and nothing else is done."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App

from core.errors import InvalidInput
from handlers.chat import Action, record_refusal
from handlers.deps import Deps
from handlers.listeners import Ctx, on_view
from slackui.modals import decode_metadata


@dataclass(frozen=True)
class RequiredTextView:
    """view_id: the modal's callback id; block_id: the text field's block; read: the text
    from the view's state values; missing: the error shown under an empty field;
    action: the audited action of a refusal, and refused: its reason; act(here, ticket,
    text): what a filled-in submission does."""

    view_id: str
    block_id: str
    read: Callable[[dict[str, Any]], str]
    missing: str
    action: str
    refused: str
    act: Callable[[Ctx, str, str], None]


def register_required_text_view(app: App, deps: Deps, view: RequiredTextView) -> None:
    def text_of(ctx: Ctx) -> str:
        return view.read((ctx.view.get("state") or {}).get("values") or {})

    def check(ctx: Ctx) -> dict[str, str] | None:
        return None if text_of(ctx) else {view.block_id: view.missing}

    def submitted(ctx: Ctx) -> None:
        metadata = decode_metadata(ctx.view.get("private_metadata"))
        if ctx.precheck.get("errors"):  # the modal stayed open with the error
            record_refusal(ctx.deps, ctx.caller,
                           Action(view.action, "ticket", metadata.get("ticket")),
                           InvalidInput(view.refused))
            return
        here = ctx.in_channel(metadata.get("channel"), metadata.get("ts"))
        view.act(here, str(metadata.get("ticket") or ""), text_of(ctx))

    on_view(app, deps, view.view_id, submitted, check=check)
