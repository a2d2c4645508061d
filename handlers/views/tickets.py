"""Submission of the resolve-ticket modal: the note is required (checked in the ack)."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.ticket_views import resolve_ticket
from handlers.views.required_text import RequiredTextView, register_required_text_view
from slackui import ids
from slackui.modals import read_resolve_note

RESOLVE = RequiredTextView(
    view_id=ids.VIEW_RESOLVE_TICKET, block_id=ids.BLOCK_RESOLVE_NOTE,
    read=read_resolve_note, missing="Say what fixed it.",
    action="ticket.resolve", refused="A resolution note is required.", act=resolve_ticket)


def register(app: App, deps: Deps) -> None:
    register_required_text_view(app, deps, RESOLVE)
