"""`/playbot tokens` lists your API tokens; `/playbot tokens revoke NAME` revokes one of them.

Tokens are made by an operator of the install (`playbot tokens add USER`), never in chat: a
token shown in Slack would sit in Slack's history. Listing shows names, prefixes, state and
last use, never a token; revoking is audited (`token.revoke`) and takes effect at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import api_tokens
from core.errors import InvalidInput
from handlers.chat import Action, perform
from handlers.listeners import Ctx
from handlers.parsing import split_words
from slackui.blocks import escape

USAGE = "`/playbot tokens` lists your API tokens; `/playbot tokens revoke NAME` revokes one."


def tokens_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    sub = words[0].lower() if words else "list"
    if sub in ("list", "ls"):
        _list(ctx)
    elif sub in ("revoke", "delete", "rm"):
        if len(words) != 2:
            raise InvalidInput(f"Which token? {USAGE}")
        _revoke(ctx, words[1])
    else:
        raise InvalidInput(f"`{words[0]}` is not a tokens command. {USAGE}")


def _list(ctx: Ctx) -> None:
    action = Action("tokens.list", "user")

    def work(session: Session, user: Any) -> Any:
        action.resource_id = user.username
        return [api_tokens.describe(t) for t in api_tokens.list_tokens(session, user)]

    rows = perform(ctx.deps, ctx.caller, action, work)
    if not rows:
        ctx.reply.ephemeral(":key: You have no API tokens. An admin makes one with "
                            "`playbot tokens add <your username> --name <what it is for>`.")
        return
    lines = [f"• `{escape(r['name'])}` `{r['prefix']}…` — {r['state']}, expires "
             f"{r['expires_at'] or 'never'}, last used {r['last_used_at'] or 'never'}"
             for r in rows]
    ctx.reply.ephemeral(":key: Your API tokens:\n" + "\n".join(lines)
                        + "\nRevoke one with `/playbot tokens revoke NAME`.")


def _revoke(ctx: Ctx, ref: str) -> None:
    action = Action("token.revoke", "user", audited_by_core=True)

    def work(session: Session, user: Any) -> Any:
        return api_tokens.revoke(session, user, ref, actor=user, origin={"via": "slack"},
                                 request=ctx.caller.request)

    token = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f":white_check_mark: Revoked your token `{escape(token.name)}` "
                        f"(`{token.prefix}…`); it no longer works.")
