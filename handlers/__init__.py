"""Slack listeners, grouped by surface: slash commands, block actions, modal submissions and
events. `register_all(app, deps)` is the one place they are attached to a Bolt app; no module
here holds an app of its own.

Listeners translate between Slack and the domain core (`core/`): they parse what was typed,
call the core as the caller's user, audit, and answer with builders from `slackui/`.
"""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register_all(app: App, deps: Deps) -> None:
    """Register every Playbot listener on `app`."""
    from handlers import actions, commands, events, views

    commands.register(app, deps)
    actions.register(app, deps)
    views.register(app, deps)
    events.register(app, deps)
