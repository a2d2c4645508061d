"""The App Home tab, published when a user opens it (`app_home_opened`).

Opening the tab is not a chat action, so it writes no audit row; it does provision a new
user as viewer (first contact) like any request.
"""

from __future__ import annotations

from slack_bolt import App

from core import jobs as core_jobs
from core import permissions
from core import templates as core_templates
from core import tickets as core_tickets
from core.errors import PlaybotError
from db import queries
from db.models import JobStatus
from db.session import transaction
from handlers.chat import resolve_user
from handlers.deps import Deps
from handlers.listeners import Ctx, on_event
from slackui import ids
from slackui.blocks import escape, header, section
from slackui.home import SECTION_LIMIT, home_view


def home_opened(ctx: Ctx) -> None:
    event = ctx.body.get("event") or {}
    if event.get("tab", "home") != "home":
        return
    try:
        with transaction(ctx.deps.session_factory) as session:
            user = resolve_user(session, ctx.deps, ctx.caller)
            mine = queries.user_history(session, user.id, limit=SECTION_LIMIT + 1)
            running = queries.recent_jobs(session, status=JobStatus.running,
                                          limit=SECTION_LIMIT + 1)
            view = home_view(
                user, my_jobs=mine, running=running,
                tickets=core_tickets.queue(session, limit=SECTION_LIMIT + 1),
                stats=queries.job_stats(session, days=7),
                run_sizes=core_jobs.run_sizes(session, (j.run_id for j in [*mine, *running])),
                templates=(core_templates.list_templates(session)[:SECTION_LIMIT]
                           if permissions.can(user, permissions.JOB_LAUNCH) else ()),
            )
    except PlaybotError as error:  # inactive or unknown user: say so on their Home tab
        view = {"type": "home", "blocks": [header("Playbot"), section(escape(str(error)))]}
    ctx.client.views_publish(user_id=ctx.caller.slack_user_id, view=view)


def register(app: App, deps: Deps) -> None:
    on_event(app, deps, ids.EVENT_APP_HOME_OPENED, home_opened)
