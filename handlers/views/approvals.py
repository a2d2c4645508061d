"""Submission of the reject-approval modal: the reason is required (checked in the ack, and
again by the core), then the run is rejected with it."""

from __future__ import annotations

from slack_bolt import App

from core.errors import InvalidInput
from handlers.chat import Action, record_refusal
from handlers.deps import Deps
from handlers.listeners import Ctx, on_view
from handlers.ticket_views import reject_request
from slackui import ids
from slackui.modals import decode_metadata, read_reject_reason


def check_reason(ctx: Ctx) -> dict[str, str] | None:
    reason = read_reject_reason((ctx.view.get("state") or {}).get("values") or {})
    if not reason:
        return {ids.BLOCK_REJECT_REASON: "Say why it is rejected."}
    return None


def reject_submitted(ctx: Ctx) -> None:
    metadata = decode_metadata(ctx.view.get("private_metadata"))
    if ctx.precheck.get("errors"):  # the modal stayed open with the error: audit the refusal
        record_refusal(ctx.deps, ctx.caller,
                       Action("approval.reject", "ticket", metadata.get("ticket")),
                       InvalidInput("A rejection needs a reason."))
        return
    reason = read_reject_reason((ctx.view.get("state") or {}).get("values") or {})
    here = ctx.in_channel(metadata.get("channel"), metadata.get("ts"))
    reject_request(here, str(metadata.get("ticket") or ""), reason)


def register(app: App, deps: Deps) -> None:
    on_view(app, deps, ids.VIEW_REJECT_APPROVAL, reject_submitted, check=check_reason)
