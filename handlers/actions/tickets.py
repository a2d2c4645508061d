"""Buttons on incident tickets: Take, Resolve (opens the note modal), Close."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.listeners import Ctx, on_action
from handlers.ticket_views import close_ticket, open_resolve_modal, take_ticket
from slackui import ids


def take_clicked(ctx: Ctx) -> None:
    take_ticket(ctx, str(ctx.action.get("value") or ""))


def resolve_clicked(ctx: Ctx) -> None:
    open_resolve_modal(ctx, str(ctx.action.get("value") or ""))


def close_clicked(ctx: Ctx) -> None:
    close_ticket(ctx, str(ctx.action.get("value") or ""))


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_TICKET_TAKE, take_clicked)
    on_action(app, deps, ids.ACTION_TICKET_RESOLVE, resolve_clicked)
    on_action(app, deps, ids.ACTION_TICKET_CLOSE, close_clicked)
