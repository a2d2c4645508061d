"""The Bolt app factory: settings (+ an optional WebClient) in, a fully registered App out.

Ack strategy (see docs/slack-app.md): `process_before_response=True`, so the HTTP response
(the ack) is sent as soon as the listener's ack function returns — no polling loop —
and every listener's ack function does only in-memory work (parsing, choosing a message).
Everything slow — database writes, Slack Web API calls, queue round trips — runs in Bolt
lazy listeners after the ack, as a durable broker message: the ack function hands the work
to `Deps.after_ack` (`bot.after_ack`), and the app the broker dispatches it to runs it as a
lazy listener (`handlers.listeners`). The one
exception is the run-playbook modal's submission, whose ack must carry field errors: it
reads the playbook and checks the values (database reads only) before answering.

Bolt logs through one base logger (`slack_bolt.App`) that carries `EscapingLogFilter`, so
whatever of a request Bolt puts in a log line is escaped and truncated.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import replace

from slack_bolt import App
from slack_sdk import WebClient

from bot.settings import Settings
from bot.web import EscapingLogFilter
from core.identity import Install
from handlers import register_all
from handlers.deps import Deps
from handlers.errors import make_global_error_handler

log = logging.getLogger(__name__)


class TokenGivenTwiceFilter(logging.Filter):
    """Drops Bolt's "As you gave `client` as well, `token` will be unused" warning: Bolt
    reads SLACK_BOT_TOKEN from the environment itself, while our client carries that very
    token, so the warning on every start would be noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def bolt_logger() -> logging.Logger:
    """Bolt's base logger with `EscapingLogFilter` on it (Bolt copies a base logger's filters
    to every logger it makes for the app)."""
    logger = logging.getLogger("slack_bolt.App")
    if not any(isinstance(existing, EscapingLogFilter) for existing in logger.filters):
        logger.addFilter(EscapingLogFilter())
    if not any(isinstance(existing, TokenGivenTwiceFilter) for existing in logger.filters):
        logger.addFilter(TokenGivenTwiceFilter())
    return logger


def slack_install(settings: Settings, client: WebClient) -> Install:
    """The Slack workspace / Grid organisation this app serves: PLAYBOT_SLACK_TEAM_ID and
    PLAYBOT_SLACK_ENTERPRISE_ID when either is set, else what `auth.test` says of the bot
    token (an org-wide install: its organisation only). Requests from anywhere else are
    refused (`core.identity.check_origin`). Raises when `auth.test` fails: an app that
    cannot tell whom it serves does not start."""
    if settings.playbot_slack_team_id or settings.playbot_slack_enterprise_id:
        return Install(team_id=settings.playbot_slack_team_id,
                       enterprise_id=settings.playbot_slack_enterprise_id)
    answer = client.auth_test()
    enterprise = answer.get("enterprise_id") or None
    if answer.get("is_enterprise_install"):
        install = Install(team_id=None, enterprise_id=enterprise)
    else:
        install = Install(team_id=answer.get("team_id") or None, enterprise_id=enterprise)
    if not install.known:
        raise ValueError("auth.test named no Slack workspace for SLACK_BOT_TOKEN; set "
                         "PLAYBOT_SLACK_TEAM_ID")
    log.info("serving Slack workspace %s (organisation %s)", install.team_id or "-",
             install.enterprise_id or "-")
    return install


def create_app(settings: Settings, *, client: WebClient, deps: Deps,
               listener_executor: Executor, verify_requests: bool = True) -> App:
    """Build the Bolt app with every listener registered (`bot.runtime` wires one).

    client: the Web API client. deps: what the listeners use (database, queue, policy).
    listener_executor: Bolt's executor for listeners (ours never run on it but for the
        after-ack fallback, see `bot.after_ack`).
    verify_requests: False only for the app after-ack work is dispatched to, whose requests
        were verified by the process that acked them.
    The bot token is checked once here with `auth.test`, so a wrong token fails at start.
    """
    if not settings.slack_bot_token or not settings.slack_signing_secret:
        raise ValueError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET must be set to run the app")
    if client.token is None:
        client.token = settings.slack_bot_token
    app = App(
        signing_secret=settings.slack_signing_secret,
        client=client,
        process_before_response=True,
        listener_executor=listener_executor,
        request_verification_enabled=verify_requests,
        name="playbot",
        logger=bolt_logger(),
    )
    if deps.install is None:  # whom the app serves: requests from elsewhere are refused
        deps = replace(deps, install=slack_install(settings, client))
    app.error(make_global_error_handler(deps))
    register_all(app, deps)
    return app
