"""Buttons on run and job messages: Cancel, Retry, Show; Cancel run and Retry failed hosts."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.job_views import cancel_job, cancel_run, retry_failed_hosts, retry_job, show_job
from handlers.listeners import Ctx, on_action
from slackui import ids


def cancel_clicked(ctx: Ctx) -> None:
    cancel_job(ctx, str(ctx.action.get("value") or ""))


def retry_clicked(ctx: Ctx) -> None:
    retry_job(ctx, str(ctx.action.get("value") or ""))


def show_clicked(ctx: Ctx) -> None:
    show_job(ctx, str(ctx.action.get("value") or ""))


def cancel_run_clicked(ctx: Ctx) -> None:
    cancel_run(ctx, str(ctx.action.get("value") or ""))


def retry_failed_clicked(ctx: Ctx) -> None:
    retry_failed_hosts(ctx, str(ctx.action.get("value") or ""))


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_JOB_CANCEL, cancel_clicked)
    on_action(app, deps, ids.ACTION_JOB_RETRY, retry_clicked)
    on_action(app, deps, ids.ACTION_JOB_SHOW, show_clicked)
    on_action(app, deps, ids.ACTION_RUN_CANCEL, cancel_run_clicked)
    on_action(app, deps, ids.ACTION_RUN_RETRY_FAILED, retry_failed_clicked)
