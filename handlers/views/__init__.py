"""Modal submission listeners, one module per modal; `register` adds them all."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    from handlers.views import approvals, run_playbook, tickets

    for module in (approvals, run_playbook, tickets):
        module.register(app, deps)
