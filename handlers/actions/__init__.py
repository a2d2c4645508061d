"""Block action listeners (buttons, selects), one module per area; `register` adds them all."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    from handlers.actions import approvals, jobs, live_log, run_playbook, tickets

    for module in (jobs, tickets, approvals, run_playbook, live_log):
        module.register(app, deps)
