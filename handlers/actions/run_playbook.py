"""The run-playbook modal's playbook select (rebuilds the form) and App Home's Run button."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps
from handlers.listeners import Ctx, on_action
from handlers.run_form import open_run_modal, playbook_selected
from slackui import ids


def home_run_clicked(ctx: Ctx) -> None:
    open_run_modal(ctx, source="home")


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_MODAL_PLAYBOOK_SELECT, playbook_selected)
    on_action(app, deps, ids.ACTION_HOME_RUN, home_run_clicked)
