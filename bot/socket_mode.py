"""Socket Mode: the same Bolt app over a WebSocket opened by us (`playbot socket`).

Useful where Slack cannot reach an HTTP endpoint (a laptop, a private network). Needs an
app-level token (`SLACK_APP_TOKEN`, xapp-…, scope `connections:write`) and Socket Mode turned
on in the app's settings. The health and metrics endpoints are HTTP-mode only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


class SocketModeConfigError(ValueError):
    """Socket Mode cannot start with this configuration."""


def make_socket_mode_handler(runtime: Runtime):  # type: ignore[no-untyped-def]
    """The Bolt SocketModeHandler for `runtime`; refuses to build without an app token."""
    token = runtime.settings.slack_app_token
    if not token:
        raise SocketModeConfigError(
            "SLACK_APP_TOKEN is not set. Socket Mode needs an app-level token (xapp-…) with the "
            "connections:write scope: create one under Basic Information → App-Level Tokens, "
            "and turn on Socket Mode in the app settings. Or run `playbot web` (HTTP mode).")
    if not token.startswith("xapp-"):
        raise SocketModeConfigError(
            "SLACK_APP_TOKEN must be an app-level token starting with xapp- "
            "(not the xoxb- bot token).")
    if runtime.app is None:
        raise SocketModeConfigError("the runtime has no Bolt app; build it with build_runtime()")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(runtime.app, app_token=token)


def run_socket_mode(runtime: Runtime) -> None:
    """Connect to Slack over Socket Mode and serve until interrupted (`playbot socket`)."""
    handler = make_socket_mode_handler(runtime)
    log.info("Playbot connecting to Slack in Socket Mode")
    try:
        handler.start()
    finally:
        handler.close()
        runtime.close()
