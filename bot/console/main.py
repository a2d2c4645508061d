"""`playbot console`: start the embedded Playbot and talk to it, interactively or from a script.

`run_console(as_user=..., script=...)` returns the process exit code: 0, 1 when a script
step failed, 2 when the console could not start (bad settings, no examples here).
The application's own logs go to a file (`var/console.log` by default) so they never
scribble over the conversation; the banner says where.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from bot.console.bootstrap import (
    CONSOLE_CHANNEL,
    CONSOLE_CHANNEL_NAME,
    SHUTDOWN_GRACE,
    ConsoleSetupError,
    Playbot,
    check_examples,
    start_playbot,
)
from bot.console.conversation import Conversation
from bot.console.people import Directory
from bot.console.repl import run_repl
from bot.console.screen import Screen
from bot.console.script import run_script
from bot.console.session import Backend, ConsoleSession
from bot.console.slack_requests import SlackRequests
from bot.settings import SettingsError, load_settings
from db.models import Job, JobStatus

DEFAULT_USER = "alice"


def setup_logging(path: Path, level: str) -> None:
    """Send every log record to `path` (and nothing to the terminal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s "
                                           "%(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def run_console(*, as_user: str = DEFAULT_USER, script: str | None = None,
                inventory: Path | None = None, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """Run the console (see the module docstring); `script` is a path or "-" for stdin."""
    out = out or sys.stdout
    err = err or sys.stderr
    lines: list[str] | None = None
    if script is not None:
        try:
            lines = (sys.stdin.read() if script == "-" else Path(script).read_text()).splitlines()
        except OSError as exc:
            err.write(f"error: cannot read the script {script}: {exc.strerror or exc}\n")
            return 2
    try:
        base = load_settings()
    except SettingsError as exc:
        err.write(f"error: {exc}\n")
        return 2
    try:
        check_examples(base, inventory)
    except ConsoleSetupError as exc:
        err.write(f"error: {exc}\n")
        return 2
    log_path = Path(base.playbot_runtime_dir).parent / "console.log"
    setup_logging(log_path, base.log_level)
    screen = Screen(out, interactive=lines is None and out.isatty())
    style = screen.style
    screen.show(style.dim("Starting Playbot (embedded: SQLite, in-process workers, "
                          "a stand-in for Slack)…"))
    try:
        playbot = start_playbot(inventory=inventory)
    except (SettingsError, ConsoleSetupError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    try:
        return _converse(playbot, screen, as_user, lines, script, log_path)
    except KeyboardInterrupt:
        return 130
    finally:
        _say_goodbye(playbot, screen)
        playbot.close()


def _say_goodbye(playbot: Playbot, screen: Screen) -> None:
    """Tell the user when running jobs are about to be stopped."""
    with playbot.session_factory() as session:
        running = session.scalar(select(func.count(Job.id)).where(
            Job.status == JobStatus.running)) or 0
    if running:
        screen.show(screen.style.dim(
            f"Stopping: {running} running job{'s' if running != 1 else ''} "
            f"get{'s' if running == 1 else ''} {SHUTDOWN_GRACE:g} s to finish, then "
            f"{'it is' if running == 1 else 'they are'} stopped."))


def _converse(playbot: Playbot, screen: Screen, as_user: str, lines: list[str] | None,
              script: str | None, log_path: Path) -> int:
    style = screen.style
    directory = Directory(playbot.session_factory)
    try:
        person = directory.person(as_user)
    except ValueError as exc:
        screen.show(style.red(f"error: {exc}"))
        return 2
    sessions: list[ConsoleSession] = []  # the one session, once made

    def current_user() -> str:
        return (sessions[0].person if sessions else person).slack_id

    def channel_name(channel: str) -> str:
        if channel == CONSOLE_CHANNEL:
            return CONSOLE_CHANNEL_NAME
        if channel.startswith("D_"):
            return f"DM {directory.name_of(channel[2:])}"
        return "#" + channel.lower()

    conversation = Conversation(playbot.fake, screen, user_name=directory.name_of,
                                current_user=current_user,
                                channel_name=channel_name, default_channel=CONSOLE_CHANNEL)
    requests = SlackRequests(playbot.sender, playbot.fake, conversation, CONSOLE_CHANNEL,
                             CONSOLE_CHANNEL_NAME.lstrip("#"))
    backend = Backend(requests=requests, conversation=conversation,
                      session_factory=playbot.session_factory,
                      wait_app_idle=playbot.wait_app_idle, drain_workers=playbot.drain_workers)
    session = ConsoleSession(backend, screen, directory, person, scripted=lines is not None)
    sessions.append(session)
    _banner(playbot, screen, log_path)
    try:
        if lines is not None:
            return run_script(session, screen, lines, script or "-")
        return run_repl(session, screen)
    finally:
        session.cancel_unfinished()


def _banner(playbot: Playbot, screen: Screen, log_path: Path) -> None:
    style = screen.style
    settings = playbot.settings
    lines = [style.bold("Playbot console") + style.dim(
        f" — the real app and workers; Slack is simulated in this terminal. "
        f"You are in {CONSOLE_CHANNEL_NAME}.")]
    for note in playbot.notes:
        lines.append(style.dim(f"  registered {note}"))
    lines.append(style.dim(f"  database {settings.database_url} · logs {log_path}"))
    lines.append("Try: /run-playbook ping local · /jobs · /tickets · click N · as bob · "
                 "help · quit")
    screen.show(lines)
