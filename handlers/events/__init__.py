"""Events API listeners (App Home, direct messages); `register` adds them all."""

from __future__ import annotations

from slack_bolt import App

from handlers.deps import Deps


def register(app: App, deps: Deps) -> None:
    from handlers.events import home, messages

    home.register(app, deps)
    messages.register(app, deps)
