"""The App Home tab: my recent jobs, running jobs, open tickets, 7-day statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from db.models import Job, Ticket, User
from slackui import ids
from slackui.blocks import Block, actions, button, context, divider, header, section
from slackui.jobs import job_line, stats_blocks
from slackui.limits import MAX_VIEW_BLOCKS, cap_blocks, more_note, take
from slackui.templates import template_picker_blocks
from slackui.tickets import ticket_line

SECTION_LIMIT = 10


def home_view(user: User, *, my_jobs: Sequence[Job], running: Sequence[Job],
              tickets: Sequence[Ticket], stats: Mapping[Any, int],
              run_sizes: Mapping[str, int] | None = None,
              templates: Sequence[Any] = ()) -> dict[str, Any]:
    """The Home tab view for `user` (type "home"), within Slack's 100 blocks.
    run_sizes: servers per run id, so a job of a run of several says so.
    templates: job templates offered with a Run button (operators and admins)."""
    sizes = run_sizes or {}
    blocks: list[Block] = [
        header("Playbot"),
        context(f"You are *{user.username}* ({user.role.value}). "
                "Type `/playbot help` anywhere for the commands."),
        actions(button("Run a playbook…", ids.ACTION_HOME_RUN, "open", style="primary"),
                block_id="home_actions"),
        divider(),
    ]
    if templates:
        blocks += template_picker_blocks(templates)
    blocks += _job_section("My recent jobs", my_jobs, "You have not run anything yet.", sizes)
    blocks += _job_section("Running now", running, "Nothing is running.", sizes)
    blocks.append(header("Open tickets"))
    shown, hidden = take(tickets, SECTION_LIMIT)
    if shown:
        blocks.append(section("\n".join(ticket_line(t) for t in shown)))
        if hidden:
            blocks.append(context(more_note(hidden, "more: `/tickets`")))
    else:
        blocks.append(section("No open tickets. :tada:"))
    blocks.append(divider())
    blocks += stats_blocks(stats, days=7, title="Last 7 days")
    return {"type": "home", "blocks": cap_blocks(blocks, MAX_VIEW_BLOCKS)}


def _job_section(title: str, jobs: Sequence[Job], empty: str,
                 sizes: Mapping[str, int]) -> list[Block]:
    blocks: list[Block] = [header(title)]
    shown, hidden = take(jobs, SECTION_LIMIT)
    if not shown:
        return [*blocks, section(empty)]
    for job in shown:
        blocks.append(section(job_line(job, sizes.get(job.run_id, 1)), accessory=button(
            "Show", ids.ACTION_JOB_SHOW, job.job_id)))
    if hidden:
        blocks.append(context(more_note(hidden, "more: `/jobs`")))
    return blocks
