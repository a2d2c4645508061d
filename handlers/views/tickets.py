"""Submission of the resolve-ticket modal: the note is required (checked in the ack)."""

from __future__ import annotations

from slack_bolt import App

from core.errors import InvalidInput
from handlers.chat import Action, record_refusal
from handlers.deps import Deps
from handlers.listeners import Ctx, on_view
from handlers.ticket_views import resolve_ticket
from slackui import ids
from slackui.modals import decode_metadata, read_resolve_note


def check_note(ctx: Ctx) -> dict[str, str] | None:
    note = read_resolve_note((ctx.view.get("state") or {}).get("values") or {})
    if not note:
        return {ids.BLOCK_RESOLVE_NOTE: "Say what fixed it."}
    return None


def resolve_submitted(ctx: Ctx) -> None:
    metadata = decode_metadata(ctx.view.get("private_metadata"))
    if ctx.precheck.get("errors"):  # the modal stayed open with the error: audit the refusal
        record_refusal(ctx.deps, ctx.caller,
                       Action("ticket.resolve", "ticket", metadata.get("ticket")),
                       InvalidInput("A resolution note is required."))
        return
    note = read_resolve_note((ctx.view.get("state") or {}).get("values") or {})
    here = ctx.in_channel(metadata.get("channel"), metadata.get("ts"))
    resolve_ticket(here, str(metadata.get("ticket") or ""), note)


def register(app: App, deps: Deps) -> None:
    on_view(app, deps, ids.VIEW_RESOLVE_TICKET, resolve_submitted, check=check_note)
