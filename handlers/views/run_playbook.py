"""Submission of the run-playbook modal: field errors in the ack, the launch after it."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.listeners import on_view
from handlers.run_form import check_submission, submit
from slackui import ids


def register(app: App, deps: Deps) -> None:
    on_view(app, deps, ids.VIEW_RUN_PLAYBOOK, submit, check=check_submission)
