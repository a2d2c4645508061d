"""`/run-playbook <playbook> <target> [key=value ...] [--check]`, and with no arguments the modal.

`/run-playbook --retry-failed <job or run id>` launches the same playbook, variables and
check mode again on only the servers of that run that failed or were unreachable (what the
run message's "Retry failed hosts" button does).

The ack answers at once and says only that the request was received ("Received: *ping* on
*local*…"), never that it started: the launch itself — validation, permission, approval,
the job rows — is `core.jobs.launch`, called after the ack by `handlers.launching`, and its
real outcome follows (the run message, "needs the approval of an admin", or the refusal). With no arguments the run-playbook modal is opened with the trigger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slack_bolt import App

from core import extra_vars
from core.errors import InvalidInput, PlaybotError
from handlers.deps import Deps
from handlers.job_views import retry_failed_hosts
from handlers.launching import launch_from_chat
from handlers.listeners import Ctx, on_command
from handlers.parsing import split_flags, split_words
from handlers.run_form import open_run_modal
from slackui import ids
from slackui.blocks import escape

USAGE = "/run-playbook <playbook> <target> [key=value ...] [--check]"
CHECK_FLAGS = ("--check", "--check-mode")
RETRY_FAILED_FLAG = "--retry-failed"
BREAK_GLASS_FLAG = "--break-glass"


def retry_failed_ref(text: str) -> str | None:
    """The job or run id of `--retry-failed <id>`, or None when the text is not that form.
    Raises InvalidInput when the id is missing or followed by anything else."""
    words = split_words(text)
    if not words or words[0].lower() != RETRY_FAILED_FLAG:
        return None
    if len(words) != 2:
        raise InvalidInput(f"Usage: `/run-playbook {RETRY_FAILED_FLAG} <job or run id>` — "
                           "relaunches a finished run on its failed hosts only.")
    return words[1]


@dataclass(frozen=True)
class RunArgs:
    playbook: str
    target: str
    raw_vars: dict[str, str] = field(default_factory=dict)
    check_mode: bool = False
    break_glass: str | None = None


def parse_run(text: str) -> RunArgs:
    """Parse the command text; raises InvalidInput / InvalidVars with a usage hint."""
    words, break_glass = _break_glass(split_words(text))
    words, flags = split_flags(words, CHECK_FLAGS)
    if len(words) < 2 or "=" in words[0] or "=" in words[1]:
        missing = "a playbook and a target" if not words or "=" in words[0] else "a target"
        raise InvalidInput(f"Please give {missing}. Usage: `{USAGE}` — e.g. "
                           "`/run-playbook ping web-01`, `/run-playbook deploy tag:web "
                           "version=1.2`. Or type `/run-playbook` alone for a form.")
    playbook, target, *assignments = words
    return RunArgs(playbook=playbook, target=target,
                   raw_vars=extra_vars.parse_assignments(assignments),
                   check_mode=bool(flags & set(CHECK_FLAGS)), break_glass=break_glass)


def _break_glass(words: list[str]) -> tuple[list[str], str | None]:
    """`--break-glass="why"` (a launch during a change freeze) apart from the other words."""
    rest, reason = [], None
    for word in words:
        flag, sep, value = word.partition("=")
        if flag == BREAK_GLASS_FLAG:
            if not sep or not value.strip():
                raise InvalidInput(f"`{BREAK_GLASS_FLAG}` needs a reason: "
                                   f"`{BREAK_GLASS_FLAG}=\"why it cannot wait\"`.")
            reason = value.strip()
        else:
            rest.append(word)
    return rest, reason


def ack_text(text: str) -> str | None:
    """The instant reply: what was received — not that it started, which only the launch
    after the ack can tell (errors are answered after the ack, audited)."""
    if not text:
        return None
    try:
        ref = retry_failed_ref(text)
        if ref is not None:
            return f":inbox_tray: Received: retry the failed hosts of `{escape(ref)}`…"
        args = parse_run(text)
    except PlaybotError:
        return None
    check = " in check mode" if args.check_mode else ""
    return f":inbox_tray: Received: *{escape(args.playbook)}* on *{escape(args.target)}*{check}…"


def run_playbook(ctx: Ctx) -> None:
    if not ctx.text:
        open_run_modal(ctx, source="command")
        return
    ref = retry_failed_ref(ctx.text)
    if ref is not None:
        retry_failed_hosts(ctx, ref)
        return
    args = parse_run(ctx.text)  # a typo is audited as a refused /run-playbook by the wrapper
    caller = ctx.caller
    launch_from_chat(
        ctx, playbook=args.playbook, target=args.target, raw_vars=args.raw_vars,
        check_mode=args.check_mode, channel_id=caller.channel_id, source="command",
        break_glass=args.break_glass,
        request_key=f"cmd:{caller.team_id}:{caller.trigger_id}")


def register(app: App, deps: Deps) -> None:
    on_command(app, deps, ids.CMD_RUN_PLAYBOOK, run_playbook, ack_text=ack_text)
