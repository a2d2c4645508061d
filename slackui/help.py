"""The command reference: one table that the help reply, the manifest test and the docs share."""

from __future__ import annotations

from dataclasses import dataclass

from slackui import ids
from slackui.blocks import Block, context, escape, header, section
from slackui.limits import MAX_MESSAGE_BLOCKS, cap_blocks


@dataclass(frozen=True)
class CommandHelp:
    command: str
    usage_hint: str  # exactly the manifest's usage_hint
    description: str  # exactly the manifest's description
    details: str
    role: str  # the least role that can use it


COMMANDS: tuple[CommandHelp, ...] = (
    CommandHelp(ids.CMD_RUN_PLAYBOOK, "<playbook> <target> [key=value ...] [--check]",
                "Run an Ansible playbook on a host, tag:<tag>, env:<environment> or "
                "group:<group>",
                "No arguments opens a form. Production runs wait for an admin's approval "
                "unless `--check`. Several servers run together as one run. "
                "`--retry-failed <job id>` runs a finished run again on its failed hosts.",
                "operator"),
    CommandHelp(ids.CMD_JOBS, "[running|failed|mine|@user|history @user|stats]",
                "List recent jobs, a user's history or 7-day statistics",
                "`running` also lists jobs queued or waiting for their server.", "viewer"),
    CommandHelp(ids.CMD_JOB, "<job id>",
                "Show one job: status, timings, recap and last log lines",
                "The first 8 characters of the id are enough.", "viewer"),
    CommandHelp(ids.CMD_CANCEL, "<job id>", "Cancel a pending or running job",
                "Operators cancel their own jobs; admins anyone's. A running job of a run of "
                "several servers stops the whole run.", "operator"),
    CommandHelp(ids.CMD_TICKETS, "[show <id>|take <id>|assign <id> @user|resolve <id> <note>|close <id>]",
                "The ticket queue by priority; show, take, resolve or close a ticket",
                "`/tickets` lists open tickets, most urgent first; admins `assign` one to "
                "someone, who is told.", "viewer"),
    CommandHelp(ids.CMD_SERVERS, "[env:<environment>] [tag:<tag>] [group:<group>] [show <host>]",
                "List servers (filter by environment, tag and group) or show one",
                "", "viewer"),
    CommandHelp(ids.CMD_PLAYBOOKS, "[tag:<tag>] [show <name>]",
                "List registered playbooks or show one with its variables", "", "viewer"),
    CommandHelp(ids.CMD_AUDIT, "<resource type> <id> [details]",
                "Audit trail of a job, ticket, approval, server, playbook or user (admins)",
                "One line per entry: when, who, what. A job's trail includes its approval and "
                "tickets; a user's, what they did. `details` adds what each entry recorded.",
                "admin"),
    CommandHelp(ids.CMD_RUN_TEMPLATE, "<template> [key=value ...]",
                "Run a saved job template, optionally setting the variables it lets you set",
                "Alone it lists the templates. Same approvals as `/run-playbook`.", "operator"),
    CommandHelp(ids.CMD_TEMPLATES,
                "[show <name>|add <name> <playbook> <target> [key=value ...]|remove <name>]",
                "List job templates; show, add or remove one",
                "`add` takes `--check`, `--override=a,b`, `--description=\"...\"`, "
                "`--replace`. Operators manage their own, admins all.", "viewer"),
    CommandHelp(ids.CMD_SCHEDULES,
                "[add <name> <template> cron \"<expr>\"|at <date> <time> [Time/Zone]|pause|"
                "resume|remove|approve <name>]",
                "List schedules and their next runs; add, pause, resume or approve one",
                "Production schedules need an admin other than the owner to approve them; "
                "`--missed=skip|once` says what runs missed while the clock was down do.",
                "viewer"),
    CommandHelp(ids.CMD_NOTIFY, "[events=a,b] [env=E] [playbook=P] [to=dm|#channel] "
                "[quiet=HH:MM-HH:MM] [tz=Zone] | channel #channel events=...",
                "View and change your notifications; admins route events to channels",
                "Events: job_ended, job_failed, approval_waiting, ticket_assigned.", "viewer"),
    CommandHelp(ids.CMD_FREEZE, "[add <env|all> <from> <to> [Time/Zone] <reason>|end <id>]",
                "List change freezes; admins add and end them",
                "`from`/`to`: `fri 16:00` `mon 08:00` (weekly) or `2026-12-24 18:00` (once). "
                "During a freeze launches are refused; `--break-glass=\"why\"` needs two "
                "admins.", "viewer"),
    CommandHelp(ids.CMD_PLAYBOT, "help | stats | whoami | history [@user] | tokens",
                "Playbot help, your role, statistics and history",
                "`tokens` lists your API tokens, `tokens revoke NAME` revokes one. Any other "
                "command also works as `/playbot <command> …`.", "viewer"),
)
BY_COMMAND = {c.command: c for c in COMMANDS}


def help_blocks(*, role: str | None = None, intro: str | None = None) -> list[Block]:
    """The command reference, with what the caller's role allows."""
    blocks: list[Block] = [header("Playbot commands")]
    if intro:
        blocks.append(section(intro))
    lines = []
    for c in COMMANDS:
        said = f"({c.role}s)" in c.description  # the description names the role already
        who = "" if c.role == "viewer" or said else f" _({c.role}s)_"
        extra = f"\n      {escape(c.details)}" if c.details else ""
        lines.append(f"`{c.command} {escape(c.usage_hint)}`{who}\n      {escape(c.description)}"
                     f"{extra}")
    blocks.append(section("\n".join(lines[:5])))
    blocks.append(section("\n".join(lines[5:])))
    roles = ("viewers read everything; operators also run playbooks, cancel their own jobs and "
             "work tickets; admins also approve production runs, read the audit trail and "
             "cancel any job.")
    you = f"You are *{role}*. " if role else ""
    blocks.append(context(f"{you}Roles: {roles}"))
    return cap_blocks(blocks, MAX_MESSAGE_BLOCKS)
