"""One console session: what each line the user types (or a script holds) does.

    /run-playbook ping local     a slash command, sent to the app as Slack sends it
    click 2 | click Take         press button 2 / the newest button labelled "Take"
    as bob                       become another user (the prompt shows who and their role)
    home                         open the App Home tab
    help                         what you can type (and the app's own /playbot help)
    quit                         leave
    wait job [STATUS] [Ns]       wait until the newest job stops running (and check its status)
    wait Ns | wait               pause N seconds | until the app has answered
    expect TEXT                  check TEXT was shown since the last command (waits up to 10 s)
    expect no TEXT               check TEXT was not shown since the last command
    expect error [TEXT]          the last command was answered with an error (containing TEXT)

After a command or click, the session waits until the app has finished answering (its
background work is idle), then fills in any modal the app opened. In script mode every line
is a step: a step fails when the app answers with an error the script did not announce with
`expect error`, when an `expect` is not met, or when a job ends otherwise than `wait job`
said; the first failing step stops the script.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.console.conversation import ClickTarget, Conversation, Shown
from bot.console.forms import FormFiller
from bot.console.people import Directory
from bot.console.render import BlockRenderer
from bot.console.screen import Mark, Screen
from bot.console.slack_requests import Person, SlackRequests
from bot.fake_slack import SlackResponse
from core.suggestions import closest
from db.models import Job, JobStatus
from slackui import ids
from slackui.blocks import short_id
from slackui.help import COMMANDS

Ask = Callable[[str], str]

# How the app marks an answer that refuses or fails what was asked (handlers.listeners
# .error_text and handlers.errors.unexpected_message start their replies with these).
ERROR_MARKS = (":no_entry:", ":mag:", ":warning:", ":x:", ":information_source:")
STATUS_WORDS = {
    "success": JobStatus.success, "succeeded": JobStatus.success, "ok": JobStatus.success,
    "failed": JobStatus.failed, "failure": JobStatus.failed,
    "cancelled": JobStatus.cancelled, "canceled": JobStatus.cancelled,
    "running": JobStatus.running, "pending": JobStatus.pending,
    "awaiting_approval": JobStatus.awaiting_approval,
    "awaiting-approval": JobStatus.awaiting_approval, "approval": JobStatus.awaiting_approval,
}
# `wait job` without a status stops at these: the job ended, or it waits for a person.
RESTING = (JobStatus.success, JobStatus.failed, JobStatus.cancelled,
           JobStatus.awaiting_approval, JobStatus.archived)
DEFAULT_JOB_TIMEOUT = 180.0
SETTLE_TIMEOUT = 30.0

HELP = """\
Type what you would type in Slack (Playbot's own commands follow), or a console command:
  click N | click LABEL        press button N (or the newest button with that label)
  as USER                      become USER (alice=admin, bob=operator, carol=viewer)
  home                         open the App Home tab
  wait job [STATUS]            wait for the newest job to finish (or reach STATUS)
  quit                         leave (Ctrl-D works too)"""


@dataclass
class StepResult:
    """What one line did: `ok` (False: the step failed, with `reason`), `quit`."""

    ok: bool = True
    reason: str = ""
    quit: bool = False


@dataclass
class Step:
    """The last command or click: where its output starts, and what went wrong with it."""

    line: str
    mark: Mark
    errors: list[str] = field(default_factory=list)
    errors_expected: bool = False


@dataclass
class Backend:
    """The running Playbot the console talks to (see bot.console.bootstrap)."""

    requests: SlackRequests
    conversation: Conversation
    session_factory: sessionmaker[Session]
    wait_app_idle: Callable[[float], bool]
    drain_workers: Callable[[float], bool]


class ConsoleSession:
    """Turns lines into Slack requests and console actions, as one user at a time."""

    def __init__(self, backend: Backend, screen: Screen, directory: Directory, person: Person,
                 *, scripted: bool = False, expect_timeout: float = 10.0) -> None:
        self.backend = backend
        self.screen = screen
        self.directory = directory
        self.person = person
        self.scripted = scripted
        self.expect_timeout = expect_timeout
        self.conversation = backend.conversation
        self.requests = backend.requests
        # the forms' own renderer: numbering buttons is the conversation's business
        self.forms = FormFiller(screen, self.conversation, self.requests,
                                BlockRenderer(screen.style, self.conversation.user_name),
                                self.settle, scripted=scripted)
        self.step: Step | None = None
        self.job_baseline = self._newest_job_pk()

    # the prompt ------------------------------------------------------------------------
    def prompt(self) -> str:
        role = self.directory.role(self.person)
        return f"{self.person.username} ({role})> "

    # one line --------------------------------------------------------------------------
    def handle(self, line: str, ask: Ask) -> StepResult:
        """Do what `line` says; `ask` reads answers for modals."""
        text = line.strip()
        if not text or text.startswith("#"):
            return StepResult()
        word, _, rest = text.partition(" ")
        word, rest = word.lower(), rest.strip()
        if text.startswith("/"):
            return self._command(text, ask)
        if word in ("click", "press", "c"):
            return self._click(rest, ask)
        if word == "as":
            return self._become(rest)
        if word in ("help", "?"):
            return self._help(ask)
        if word == "home":
            return self._home(ask)
        if word in ("quit", "exit", "q"):
            return self._quit(ask)
        if word == "wait":
            return self._wait(rest)
        if word == "expect":
            return self._expect(rest)
        return self._unknown(text)

    def finish(self) -> StepResult:
        """End of a script: the last command must not have an unannounced error."""
        return self._check_last_step()

    # commands and clicks ---------------------------------------------------------------
    def _begin(self, line: str) -> StepResult:
        failed = self._check_last_step()
        self.step = Step(line=line, mark=self.screen.transcript.mark())
        return failed

    def _check_last_step(self) -> StepResult:
        step = self.step
        if step is None or not step.errors or step.errors_expected or not self.scripted:
            return StepResult()
        step.errors_expected = True  # report it once
        return StepResult(ok=False, reason=f"`{step.line}` was answered with an error: "
                                           f"{step.errors[0]}")

    def _command(self, text: str, ask: Ask) -> StepResult:
        failed = self._begin(text)
        if not failed.ok:
            return failed
        command, _, arguments = text.partition(" ")
        known = [c.command for c in COMMANDS]
        if command not in known:
            # Slack answers an unregistered command itself; the app never hears of it.
            guess = closest(command, known, n=2)
            hint = f" Did you mean {' or '.join(guess)}?" if guess else " Try /playbot help."
            self._step_error(f"{command} is not a valid command")
            self.screen.show(self.screen.style.red(
                f"  Slack: {command} is not a valid command.{hint}"))
            return StepResult()
        replies = self.conversation.reply_count()
        response = self.requests.command(self.person, command, arguments.strip())
        self._show_ack(response)
        self._after_request(replies, ask)
        return StepResult()

    def _click(self, what: str, ask: Ask) -> StepResult:
        if not what:
            return self._usage("click N (the button's number) or click LABEL")
        target = self._target(what)
        if target is None:
            return self._refuse(f"there is no button {what!r} on screen")
        if target.gone:
            return self._refuse(f"button {target.number} ({target.choice.label}) is gone: its "
                                "message has changed since")
        owner = target.message.ephemeral_for if target.message is not None else None
        if owner and owner != self.person.slack_id:
            # Slack shows an ephemeral message to one person only; nobody else can press it.
            return self._refuse(f"button {target.number} ({target.choice.label}) is on a "
                                f"message only {self.directory.name_of(owner)} can see")
        failed = self._begin(f"click {what}")
        if not failed.ok:
            return failed
        if target.choice.confirm and not self._confirm(target, ask):
            self.screen.show(self.screen.style.dim("  (not pressed)"))
            return StepResult()
        replies = self.conversation.reply_count()
        response = self.requests.click(self.person, target)
        if response.status != 200:
            self._step_error(f"the app answered HTTP {response.status}")
            self.screen.show(self.screen.style.red(f"  the app answered HTTP {response.status}"))
        self._after_request(replies, ask)
        return StepResult()

    def _target(self, what: str) -> ClickTarget | None:
        if what.isdigit():
            return self.conversation.target(int(what))
        return self.conversation.find_choice(what.strip("\"'"))

    def _confirm(self, target: ClickTarget, ask: Ask) -> bool:
        confirm = target.choice.confirm or {}
        renderer = self.conversation.renderer
        title = " ".join(renderer.text_object(confirm.get("title"))) or "Are you sure?"
        body = " ".join(renderer.text_object(confirm.get("text")))
        yes = " ".join(renderer.text_object(confirm.get("confirm"))) or "Yes"
        self.screen.show(f"  {self.screen.style.bold(title)} {body}")
        if self.scripted:
            self.screen.show(self.screen.style.dim(f"  (script: {yes})"))
            return True
        answer = ask(f"  {yes}? [y/N]: ").strip().lower()
        return answer in ("y", "yes")

    def _show_ack(self, response: SlackResponse) -> None:
        channel = self.requests.channel
        if response.status != 200:
            reason = response.body.strip()[:200] or "no body"
            self._step_error(f"HTTP {response.status}: {reason}")
            self.screen.show(self.screen.style.red(
                f"  the app answered HTTP {response.status}: {reason}"))
            return
        body = response.json() if response.body.strip().startswith("{") else response.body
        if isinstance(body, dict):
            text, blocks = str(body.get("text") or ""), list(body.get("blocks") or [])
            in_channel = body.get("response_type") == "in_channel"
        else:
            text, blocks, in_channel = str(body or ""), [], False
        if text.strip() or blocks:
            shown = self.conversation.show_ack(self.person.slack_id, channel, text, blocks,
                                               in_channel)
            self._note_if_error(shown)

    def _after_request(self, replies_before: int, ask: Ask) -> None:
        """Wait for the app to finish answering; fill in the modals it opened."""
        self.settle()
        for reply in self.conversation.replies_since(replies_before, self.person.slack_id):
            self._note_if_error(reply)
        for _ in range(10):
            modal = self.conversation.next_modal()
            if modal is None:
                return
            person = self.person
            if modal.user != self.person.slack_id:
                person = Person(self.directory.name_of(modal.user), modal.user)
            before = self.conversation.reply_count()
            outcome = self.forms.fill(modal, person, ask)
            for key, message in outcome.errors.items():
                self._step_error(f"{key}: {message}" if key else message)
            for reply in self.conversation.replies_since(before, self.person.slack_id):
                self._note_if_error(reply)

    def settle(self) -> None:
        """Wait until the app has finished the work it does after its acks."""
        self.backend.wait_app_idle(SETTLE_TIMEOUT)

    def _note_if_error(self, message: Shown) -> None:
        text = message.text.strip()
        if not text and message.rendered.body:
            text = message.rendered.body[0]
        if text.startswith(ERROR_MARKS):
            self._step_error(self.conversation.renderer.mrkdwn(text)[0] if text else text)

    def _step_error(self, reason: str) -> None:
        if self.step is not None:
            self.step.errors.append(reason)

    # console commands ------------------------------------------------------------------
    def _become(self, name: str) -> StepResult:
        if not name:
            return self._usage("as USER, e.g. `as bob`")
        try:
            person = self.directory.person(name)
        except ValueError as exc:
            return self._refuse(str(exc))
        self.person = person
        role = self.directory.role(person)
        note = ""
        if role == "new":
            note = (" — not a Playbot user yet: Playbot meets them as a new Slack user "
                    f"({person.slack_id})")
        self.screen.show(self.screen.style.dim(f"  you are now {person.username} ({role}){note}"))
        return StepResult()

    def _quit(self, ask: Ask) -> StepResult:
        """Leave; unfinished jobs are cancelled first, after asking (a script does not ask)."""
        unfinished = self.unfinished_jobs()
        if unfinished and not self.scripted:
            listed = ", ".join(f"{short_id(job.job_id)} ({job.playbook.name} on {job.server.hostname})"
                               for job in unfinished[:5])
            n = len(unfinished)
            answer = ask(f"  {n} job{'s' if n != 1 else ''} not finished: {listed}. "
                         "Cancel and quit? [y/N]: ").strip().lower()
            if answer not in ("y", "yes"):
                self.screen.show(self.screen.style.dim(
                    "  (staying: the jobs go on; quit again once they are done)"))
                return StepResult()
        self.cancel_unfinished()
        return StepResult(quit=True)

    def unfinished_jobs(self) -> list[Job]:
        """Pending and running jobs, oldest first, with their playbook, server and user."""
        with self.backend.session_factory() as session:
            jobs = list(session.scalars(select(Job).where(
                Job.status.in_((JobStatus.pending, JobStatus.running))).order_by(Job.id)).unique())
            for job in jobs:
                _ = (job.playbook.name, job.server.hostname, job.user)
            return jobs

    def cancel_unfinished(self, timeout: float = 30.0) -> None:
        """Cancel every pending or running job as its owner would (`/cancel-job`), and wait
        until they have ended: leaving the console then leaves no job to fail, no ticket."""
        unfinished = self.unfinished_jobs()
        if not unfinished:
            return
        self.screen.show(self.screen.style.dim(
            f"  cancelling {len(unfinished)} unfinished job{'s' if len(unfinished) != 1 else ''} "
            "before leaving…"))
        for job in unfinished:
            owner = (Person(job.user.username, job.user.slack_user_id)
                     if job.user is not None and job.user.slack_user_id else self.person)
            self.requests.command(owner, ids.CMD_CANCEL, job.job_id)
        self.settle()
        deadline = time.monotonic() + timeout
        while self.unfinished_jobs() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.backend.drain_workers(5.0)

    def _help(self, ask: Ask) -> StepResult:
        self.screen.show(HELP.splitlines())
        return self._command(f"{ids.CMD_PLAYBOT} help", ask)

    def _home(self, ask: Ask) -> StepResult:
        failed = self._begin("home")
        if not failed.ok:
            return failed
        self.conversation.want_home.add(self.person.slack_id)
        self.requests.open_home(self.person)
        self._after_request(self.conversation.reply_count(), ask)
        return StepResult()

    def _unknown(self, text: str) -> StepResult:
        word = text.split()[0].lower()
        commands = sorted(c.lstrip("/") for c in ids.ALL_COMMANDS)
        if word in commands or word.replace("_", "-") in commands:
            hint = f"slash commands start with /: try `/{text}`"
        else:
            hint = "type a slash command such as `/run-playbook ping local`, or `help`"
        return self._refuse(f"I don't understand {text!r}: {hint}")

    # script directives -----------------------------------------------------------------
    def _wait(self, rest: str) -> StepResult:
        words = rest.split()
        if not words:
            self.settle()
            self.conversation.wait_quiet(0.3, timeout=5)
            return StepResult()
        if words[0] == "job":
            return self._wait_job(words[1:])
        seconds = _seconds(words[0])
        if seconds is None or len(words) > 1:
            return self._usage("wait job [STATUS] [TIMEOUTs] | wait Ns | wait")
        time.sleep(seconds)
        return StepResult()

    def _wait_job(self, words: list[str]) -> StepResult:
        wanted: JobStatus | None = None
        timeout = DEFAULT_JOB_TIMEOUT
        for word in words:
            if (seconds := _seconds(word)) is not None:
                timeout = seconds
            elif word.lower() in STATUS_WORDS:
                wanted = STATUS_WORDS[word.lower()]
            else:
                return self._usage(f"wait job [STATUS] [TIMEOUTs]; STATUS is one of "
                                   f"{', '.join(sorted({s.value for s in STATUS_WORDS.values()}))}")
        deadline = time.monotonic() + timeout
        job = self._newest_job()
        while job is None and time.monotonic() < deadline:
            time.sleep(0.2)
            job = self._newest_job()
        if job is None:
            return self._refuse("no job was started in this console yet")
        stop_at = (wanted,) if wanted is not None and not wanted.is_final else RESTING
        while job.status not in stop_at and time.monotonic() < deadline:
            time.sleep(0.2)
            job = self._job(job.id) or job
        if job.status in (JobStatus.success, JobStatus.failed, JobStatus.cancelled):
            self.backend.drain_workers(15.0)  # the final message update and thread posts
        self.settle()
        self.conversation.wait_quiet(0.3, timeout=5)
        label = job.status.value.replace("_", " ")
        self.screen.show(self.screen.style.dim(
            f"  ⏱ job {short_id(job.job_id)} ({job.playbook.name} on {job.server.hostname}): "
            f"{label}"))
        if job.status not in stop_at:
            return self._refuse(f"job {short_id(job.job_id)} is still {label} after "
                                f"{timeout:g} s")
        if wanted is not None and job.status != wanted:
            verb = "ended" if job.status.is_final else "is"
            return self._refuse(f"job {short_id(job.job_id)} {verb} {label}, expected "
                                f"{wanted.value.replace('_', ' ')}"
                                + (f": {job.error_message}" if job.error_message else ""))
        return StepResult()

    def _expect(self, rest: str) -> StepResult:
        if not rest:
            return self._usage("expect TEXT | expect no TEXT | expect error [TEXT]")
        mark = self.step.mark if self.step else None
        word, _, tail = rest.partition(" ")
        if word.lower() == "error":
            return self._expect_error(_literal(tail))
        if word.lower() == "no" and tail:
            needle = _literal(tail)
            self.settle()
            self.conversation.wait_quiet(0.3, timeout=3)
            if needle.lower() in self.screen.transcript.text(mark).lower():
                return self._refuse(f"expected not to see {needle!r}, but it was shown")
            return StepResult()
        needle = _literal(rest)
        if self.screen.transcript.wait_for(needle, mark, timeout=self.expect_timeout):
            return StepResult()
        return self._refuse(f"expected to see {needle!r} (waited {self.expect_timeout:g} s)")

    def _expect_error(self, needle: str) -> StepResult:
        step = self.step
        if step is None:
            return self._refuse("`expect error` needs a command before it")
        deadline = time.monotonic() + self.expect_timeout
        while not step.errors and time.monotonic() < deadline:
            time.sleep(0.1)
        step.errors_expected = True
        if not step.errors:
            return self._refuse(f"expected `{step.line}` to be answered with an error; "
                                "it was not")
        if needle and not any(needle.lower() in e.lower() for e in step.errors):
            return self._refuse(f"expected an error about {needle!r}; got: {step.errors[0]}")
        return StepResult()

    # helpers ---------------------------------------------------------------------------
    def _refuse(self, reason: str) -> StepResult:
        self.screen.show(self.screen.style.red(f"  ✗ {reason}"))
        return StepResult(ok=False, reason=reason)

    def _usage(self, usage: str) -> StepResult:
        return self._refuse(f"usage: {usage}")

    def _newest_job_pk(self) -> int:
        with self.backend.session_factory() as session:
            return int(session.scalar(select(func.max(Job.id))) or 0)

    def _newest_job(self) -> Job | None:
        with self.backend.session_factory() as session:
            return session.scalar(select(Job).where(Job.id > self.job_baseline)
                                  .order_by(Job.id.desc()).limit(1))

    def _job(self, pk: int) -> Job | None:
        with self.backend.session_factory() as session:
            return session.get(Job, pk)


def _seconds(word: str) -> float | None:
    """"30s", "2m", "1.5" → seconds; None if `word` is no duration."""
    unit = 60.0 if word.endswith("m") else 1.0
    number = word.removesuffix("s").removesuffix("m")
    try:
        value = float(number)
    except ValueError:
        return None
    return value * unit if value >= 0 else None


def _literal(text: str) -> str:
    """The text of an `expect`: as written, or what is inside quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        try:
            return shlex.split(text)[0]
        except ValueError:
            return text[1:-1]
    return text
