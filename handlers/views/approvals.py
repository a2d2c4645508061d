"""Submission of the reject-approval modal: the reason is required (checked in the ack, and
again by the core), then the run is rejected with it."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.ticket_views import reject_request
from handlers.views.required_text import RequiredTextView, register_required_text_view
from slackui import ids
from slackui.modals import read_reject_reason

REJECT = RequiredTextView(
    view_id=ids.VIEW_REJECT_APPROVAL, block_id=ids.BLOCK_REJECT_REASON,
    read=read_reject_reason, missing="Say why it is rejected.",
    action="approval.reject", refused="A rejection needs a reason.", act=reject_request)


def register(app: App, deps: Deps) -> None:
    register_required_text_view(app, deps, REJECT)
