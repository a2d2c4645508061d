"""How a Playbot listener is wired into Bolt: a fast ack, then the real work in the background.

Every listener is registered as Bolt's `ack=` function plus one lazy function (the work
after the ack). The ack function runs before the HTTP response and does in-memory work only
(for a slash command, choosing the first ephemeral line). In the app that acks
(`Deps.after_ack` set) the ack function then hands the work to the broker by the lazy
function's name, before the response goes out; the app the broker dispatches it to
(`bot.after_ack`) registers it as a Bolt lazy listener and runs it. The work builds a `Ctx` (caller, replier, deps), refuses a request from outside the
Slack install (`core.identity.check_origin`: audited, never provisioned) and calls the
handler. A handler's `PlaybotError` becomes an ephemeral reply with the error's message
(user text in it escaped: see `error_text`); anything else goes to the error boundary
(`handlers.errors`), which logs it and tells the user.

View submissions may need a check before the ack (to return field errors in the ack):
`on_view(..., check=...)` runs `check(ctx)` — database reads only — and stores its verdict
in the request context, which travels with the request to the lazy half as `ctx.precheck`.
A repeated delivery of the work (its first consumer died) sees `ctx.redelivered`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from slack_bolt import Ack, App, Args, BoltContext
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from core import identity
from core.errors import InvalidInput, InvalidState, InvalidVars, NotAllowed, NotFound, PlaybotError
from handlers.chat import Action, record_refusal
from handlers.context import Caller, caller_from
from handlers.deps import Deps
from handlers.errors import log_unexpected, unexpected_message
from handlers.parsing import slack_unescape
from handlers.replies import Replier
from slackui.text import escape

log = logging.getLogger(__name__)
PRECHECK_KEY = "playbot_precheck"
# Set by `bot.after_ack` when the work after an ack is delivered again (its first consumer
# died): the handler finishes what the first delivery left undone, without answering twice.
REDELIVERY_KEY = "playbot_redelivery"


@dataclass
class Ctx:
    """Everything a handler needs for one request, in the background half."""

    deps: Deps
    caller: Caller
    client: WebClient
    body: dict[str, Any]
    reply: Replier
    precheck: dict[str, Any] = field(default_factory=dict)
    origin_ts: str | None = None  # the message a modal was opened from (its metadata)
    redelivered: bool = False  # a repeated delivery of this request's after-ack work

    @property
    def text(self) -> str:
        """The slash command's text as the user typed it (Slack's escaping undone)."""
        return command_text(self.body)

    @property
    def action(self) -> dict[str, Any]:
        """The first action of a block_actions payload."""
        return (self.body.get("actions") or [{}])[0]

    @property
    def view(self) -> dict[str, Any]:
        return self.body.get("view") or {}

    @property
    def message_ts(self) -> str | None:
        """The ts of the message whose button was clicked, if any."""
        if self.origin_ts:
            return self.origin_ts
        container = self.body.get("container") or {}
        return container.get("message_ts") or (self.body.get("message") or {}).get("ts")


    def in_channel(self, channel_id: str | None, message_ts: str | None = None) -> Ctx:
        """This context as if the request came from `channel_id` (a modal opened there)."""
        if not channel_id:
            return self
        caller = replace(self.caller, channel_id=channel_id)
        reply = Replier(self.client, caller, None, jobs_channel=self.deps.jobs_channel)
        return replace(self, caller=caller, reply=reply, origin_ts=message_ts or self.origin_ts)


Handler = Callable[[Ctx], None]


def command_text(body: dict[str, Any]) -> str:
    """A slash command's text, Slack's escaping of `&`, `<`, `>` undone
    (`handlers.parsing.slack_unescape`); what is shown back is escaped again."""
    return slack_unescape(str(body.get("text") or "")).strip()


def error_text(error: PlaybotError) -> str:
    """The user-facing line for an expected error, with an emoji saying what kind it is.

    The message is escaped as a whole (`slackui.text.escape`): core errors are plain text
    that quote what the user typed, so nothing in them becomes a mention or link, and usage
    placeholders (`<job id>`) render."""
    if isinstance(error, NotAllowed):
        emoji = ":no_entry:"
    elif isinstance(error, NotFound):
        emoji = ":mag:"
    elif isinstance(error, InvalidVars | InvalidInput):
        emoji = ":warning:"
    elif isinstance(error, InvalidState):
        emoji = ":information_source:"
    else:
        emoji = ":warning:"
    return f"{emoji} {escape(error)}"


def _make_ctx(deps: Deps, body: dict[str, Any], client: WebClient,
              respond: Callable[..., Any] | None, request: BoltRequest,
              context: BoltContext | None = None) -> Ctx:
    caller = caller_from(body, request.headers)
    replier = Replier(client, caller, respond, jobs_channel=deps.jobs_channel)
    precheck = dict(context.get(PRECHECK_KEY) or {}) if context is not None else {}
    redelivered = bool(context.get(REDELIVERY_KEY)) if context is not None else False
    return Ctx(deps=deps, caller=caller, client=client, body=body, reply=replier,
               precheck=precheck, redelivered=redelivered)


def _background(deps: Deps, handler: Handler, where: str, *, notify: bool = True
                ) -> Callable[..., None]:
    def run_after_ack(body: dict[str, Any], client: WebClient, respond: Any,
                      request: BoltRequest, context: BoltContext) -> None:
        ctx: Ctx | None = None
        try:
            ctx = _make_ctx(deps, body, client, respond, request, context)
            try:
                # Nothing of a request from outside the install runs: refused, audited
                # without an account, never provisioned (core.identity).
                _check_origin(deps, ctx.caller, where)
                handler(ctx)
            except PlaybotError as error:
                record_refusal(deps, ctx.caller, fallback_action(body), error)
                if notify:
                    ctx.reply.ephemeral(error_text(error))
        except Exception as error:  # noqa: BLE001 - the background half's error boundary
            ref = log_unexpected(error, where=where, body=body, deps=deps)
            if notify and ctx is not None:
                _tell(ctx, unexpected_message(ref, error))

    run_after_ack.__name__ = f"run_{getattr(handler, '__name__', 'handler')}"
    return run_after_ack


def fallback_action(body: dict[str, Any]) -> Action:
    """How a refused request is audited when its handler did not name the action."""
    if "command" in body:
        return Action("command", "command", str(body.get("command")),
                      details={"text": command_text(body)[:300]})
    kind = str(body.get("type") or "request")
    if kind == "block_actions":
        first = (body.get("actions") or [{}])[0]
        return Action("action", "action", str(first.get("action_id")),
                      details={"value": str(first.get("value") or "")[:300]})
    if kind == "view_submission":
        return Action("view", "view", str((body.get("view") or {}).get("callback_id")))
    return Action(kind, "request")


def _tell(ctx: Ctx, text: str) -> None:
    try:
        ctx.reply.ephemeral(text)
    except (SlackApiError, OSError) as exc:
        log.warning("could not tell %s about an error: %s", ctx.caller.slack_user_id, exc)


def _register(deps: Deps, route: Callable[..., Any], ack_function: Callable[..., None],
              work: Callable[..., None]) -> None:
    """Register `ack_function` and the work after it on Bolt's `route` (e.g. app.command(x)).

    With `deps.after_ack` (the app that acks, `bot.after_ack`), the work is handed to the
    broker by name inside the ack function, after `ack()` and before Bolt sends the response,
    so an acked request is already durable; the app the broker dispatches to has no
    `after_ack` and registers the same work as a Bolt lazy listener, found by that name.
    """
    if deps.after_ack is None:
        route(ack=ack_function, lazy=[work])
        return
    send, name = deps.after_ack, work.__name__
    wanted = list(inspect.signature(ack_function).parameters)

    def ack_and_hand_off(args: Args) -> None:  # Bolt's documented "every argument" object
        ack_function(**{key: getattr(args, key) for key in wanted})
        send(name, args.request)

    route(ack=ack_and_hand_off, lazy=[])


def on_command(app: App, deps: Deps, command: str, handler: Handler, *,
               ack_text: Callable[[str], str | None] | None = None) -> None:
    """`handler` answers `command` after the ack; `ack_text(text)` picks the instant reply."""

    def ack_command(ack: Ack, body: dict[str, Any]) -> None:
        text = ack_text(command_text(body)) if ack_text else None
        ack(text) if text else ack()

    _register(deps, app.command(command), ack_command, _background(deps, handler, "command"))


def on_action(app: App, deps: Deps, action_id: str, handler: Handler) -> None:
    """`handler` reacts to a button or select with `action_id`, after an empty ack."""

    def ack_action(ack: Ack) -> None:
        ack()

    _register(deps, app.action(action_id), ack_action, _background(deps, handler, "action"))


def on_view(app: App, deps: Deps, callback_id: str, handler: Handler, *,
            check: Callable[[Ctx], dict[str, str] | None] | None = None) -> None:
    """`handler` processes a submitted modal after the ack.

    check: runs before the ack; returns {block_id: message} to keep the modal open with
    those field errors (the handler then sees `ctx.precheck["errors"]`), or None.
    """

    def ack_view(ack: Ack, body: dict[str, Any], client: WebClient, request: BoltRequest,
                 context: BoltContext) -> None:
        errors = None
        if check is not None:
            ctx = _make_ctx(deps, body, client, None, request)
            if _from_install(deps, ctx.caller):  # else the lazy half refuses it
                errors = check(ctx)
        if errors:
            context[PRECHECK_KEY] = {"errors": dict(errors)}
            ack(response_action="errors", errors=errors)
        else:
            ack()

    _register(deps, app.view(callback_id), ack_view, _background(deps, handler, "view"))


def _check_origin(deps: Deps, caller: Caller, where: str) -> None:
    """Raise ForeignWorkspace for a request from outside the install, logging who sent it."""
    try:
        identity.check_origin(deps.install, caller.origin)
    except PlaybotError:
        log.warning("refused a %s from outside the install: user %s of team %s "
                    "(request team %s, enterprise %s)", where, caller.slack_user_id,
                    caller.user_team_id or "-", caller.team_id or "-",
                    caller.enterprise_id or "-")
        raise


def _from_install(deps: Deps, caller: Caller) -> bool:
    try:
        identity.check_origin(deps.install, caller.origin)
    except PlaybotError:
        return False
    return True


def on_event(app: App, deps: Deps, event: str, handler: Handler) -> None:
    """`handler` reacts to an Events API event (acked by Bolt at once)."""

    def ack_event(ack: Ack) -> None:
        ack()

    _register(deps, app.event(event), ack_event,
              _background(deps, handler, "event", notify=False))
