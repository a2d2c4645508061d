"""Events API listeners (App Home); `register` adds them all."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    from handlers.events import home

    home.register(app, deps)
