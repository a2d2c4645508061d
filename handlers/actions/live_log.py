"""The Live log button of a job or run message: a link only the clicker sees.

A channel message is seen by everyone in the channel, so it cannot carry a link that is
someone's credential. The button instead answers the person who clicks it, ephemerally, with
a signed, expiring link per job of the run, made for their own Playbot user
(`core.log_links`): the page then shows the log with their role, and stops when the link
expires or their account is deactivated. Without PLAYBOT_PUBLIC_URL there is nowhere to
point, and the answer says so.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from sqlalchemy.orm import Session

from core import jobs as core_jobs
from core import permissions
from handlers.chat import Action, perform
from handlers.deps import Deps
from handlers.listeners import Ctx, on_action
from slackui import ids
from slackui.blocks import escape, short_id

MAX_LINKS = 20


def live_log(ctx: Ctx) -> None:
    run_ref = str(ctx.action.get("value") or "")
    action = Action("log.link", "run", run_ref)
    links = ctx.deps.log_links

    def work(session: Session, user: Any) -> Any:
        permissions.require(user, permissions.LOG_VIEW)
        jobs = core_jobs.get_run(session, run_ref)
        if links is None or not links.public_url:
            return None
        return [(job.server.hostname, job.job_id, links.url(job.job_id, user.id))
                for job in jobs[:MAX_LINKS]], len(jobs)

    made = perform(ctx.deps, ctx.caller, action, work)
    if made is None:
        ctx.reply.ephemeral(":information_source: The live log page is not set up here: an "
                            "admin sets PLAYBOT_PUBLIC_URL to the address of `playbot web`. "
                            "Meanwhile the log streams into this message's thread.")
        return
    rows, total = made
    minutes = int(links.ttl.total_seconds() // 60)
    lines = [f"• <{url}|{escape(host)}> (job `{short_id(job_id)}`)" for host, job_id, url in rows]
    if total > len(rows):
        lines.append(f"…and {total - len(rows)} more: `/job <id>` names them.")
    ctx.reply.ephemeral(f":scroll: Live log, for you only (the links expire in {minutes} "
                        "minutes):\n" + "\n".join(lines))


def register(app: App, deps: Deps) -> None:
    on_action(app, deps, ids.ACTION_LIVE_LOG, live_log)
