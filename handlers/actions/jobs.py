"""Buttons on job messages: Cancel, Retry, Show."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.job_views import cancel_job, retry_job, show_job
from handlers.listeners import Ctx, on_action
from slackui import ids


def cancel_clicked(ctx: Ctx) -> None:
    cancel_job(ctx, str(ctx.action.get("value") or ""))


def retry_clicked(ctx: Ctx) -> None:
    retry_job(ctx, str(ctx.action.get("value") or ""))


def show_clicked(ctx: Ctx) -> None:
    show_job(ctx, str(ctx.action.get("value") or ""))


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_JOB_CANCEL, cancel_clicked)
    on_action(app, deps, ids.ACTION_JOB_RETRY, retry_clicked)
    on_action(app, deps, ids.ACTION_JOB_SHOW, show_clicked)
