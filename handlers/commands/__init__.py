"""Slash command listeners, one module per area; `register` adds them all."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    from handlers.commands import (
        audit,
        catalog,
        freeze,
        jobs,
        notify,
        playbot,
        run_playbook,
        schedules,
        templates,
        tickets,
    )

    for module in (run_playbook, jobs, tickets, catalog, audit, playbot, templates, freeze,
                   schedules, notify):
        module.register(app, deps)
