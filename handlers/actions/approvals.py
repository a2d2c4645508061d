"""Buttons on approval requests: Approve (enqueues the job) and Reject (opens a modal asking
for the reason; its submission rejects, see `handlers.views.approvals`)."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.listeners import Ctx, on_action
from handlers.ticket_views import approve_request, open_reject_modal
from slackui import ids


def approve_clicked(ctx: Ctx) -> None:
    approve_request(ctx, str(ctx.action.get("value") or ""))


def reject_clicked(ctx: Ctx) -> None:
    open_reject_modal(ctx, str(ctx.action.get("value") or ""))


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_APPROVAL_APPROVE, approve_clicked)
    on_action(app, deps, ids.ACTION_APPROVAL_REJECT, reject_clicked)
