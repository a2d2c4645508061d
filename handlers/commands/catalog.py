"""`/servers [env:<e>] [tag:<t>] [group:<g>] [show <host>]` and `/playbooks [tag:<t>] [show <name>]`.

`group:<g>` lists the servers of a server group and of its children; a mistyped group
answers with the closest group names.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import permissions, playbook_registry, servers
from core.errors import InvalidInput
from core.server_groups import servers_in_group
from db.models import Job
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_command
from handlers.parsing import parse_filters, split_words, unknown
from slackui import ids
from slackui.catalog import (
    playbook_details_blocks,
    playbook_list_blocks,
    server_details_blocks,
    server_list_blocks,
)
from slackui.text import escape

SERVERS_USAGE = "/servers [env:<environment>] [tag:<tag>] [group:<group>] [show <host>]"
PLAYBOOKS_USAGE = "/playbooks [tag:<tag>] [show <name>]"
RECENT_JOBS = 5


def servers_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if words and words[0].lower() == "show":
        if len(words) != 2:
            raise InvalidInput("Which server? e.g. `/servers show web-01`.")
        show_server(ctx, words[1])
        return
    filters, rest = parse_filters(words, ("env", "tag", "group"))
    if rest:
        raise unknown(rest[0], ["show", "env:", "tag:", "group:"], "option", SERVERS_USAGE)
    action = Action("servers.list", "server", details=filters)

    def work(session: Session, user: Any) -> list[Any]:
        permissions.require(user, permissions.SERVER_VIEW)
        found = servers.list_servers(session, environment=filters.get("env"),
                                     tag=filters.get("tag"))
        if filters.get("group"):
            members = {s.id for s in servers_in_group(session, filters["group"])}
            found = [s for s in found if s.id in members]
        return found

    found = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Servers", server_list_blocks(found, filters=filters))


def show_server(ctx: Ctx, hostname: str) -> None:
    action = Action("server.show", "server", hostname)

    def work(session: Session, user: Any) -> tuple[Any, list[Any]]:
        permissions.require(user, permissions.SERVER_VIEW)
        server = servers.get_server(session, hostname)
        action.resource_id = server.hostname
        recent = list(session.scalars(
            select(Job).where(Job.server_id == server.id)
            .order_by(Job.id.desc()).limit(RECENT_JOBS)).unique())
        return server, recent

    server, recent = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Server {escape(server.hostname)}", server_details_blocks(server, recent))


def playbooks_command(ctx: Ctx) -> None:
    words = split_words(ctx.text)
    if words and words[0].lower() == "show":
        if len(words) != 2:
            raise InvalidInput("Which playbook? e.g. `/playbooks show deploy`.")
        show_playbook(ctx, words[1])
        return
    filters, rest = parse_filters(words, ("tag",))
    if rest:
        raise unknown(rest[0], ["show", "tag:"], "option", PLAYBOOKS_USAGE)
    action = Action("playbooks.list", "playbook", details=filters)

    def work(session: Session, user: Any) -> list[Any]:
        permissions.require(user, permissions.PLAYBOOK_VIEW)
        return playbook_registry.list_playbooks(session, tag=filters.get("tag"))

    found = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral("Playbooks", playbook_list_blocks(found, filters=filters))


def show_playbook(ctx: Ctx, name: str) -> None:
    action = Action("playbook.show", "playbook", name)

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.PLAYBOOK_VIEW)
        return playbook_registry.get_playbook(session, name)

    book = perform(ctx.deps, ctx.caller, action, work)
    ctx.reply.ephemeral(f"Playbook {escape(book.name)}", playbook_details_blocks(book))


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_SERVERS, servers_command)
    on_command(app, deps, ids.CMD_PLAYBOOKS, playbooks_command)
