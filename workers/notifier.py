"""Slack outbound from the workers — the only module that talks to Slack from a worker.

A `RunNotifier` follows one run (the jobs of one launch: one server or many) in its own
thread, fed through non-blocking calls: `lines()` (already redacted output), `progress()`,
then `finish()`. It

- updates the run's ONE channel message in place (status, counts, tasks done, the
  per-host table) at most every `update_interval` seconds, and once more with the final
  state — through the message's one writer, `slackui.message_owner`, which draws it from
  the run as the database holds it (plus this notifier's live progress) and never lets a
  stale drawing replace a newer one (a cancel or an approval redrawn by the app);
- posts output into the message's thread as coalesced code blocks (≤ 2,900 characters a
  section, ≤ 4 sections a post), at most one post per `post_interval` per channel, shared
  by every run posting there: through Redis across all worker processes, or within the
  process without Redis (the pacers live in `workers.pacing`); in a run of several hosts
  each line is marked with its host (`web-01 │ ok: [web-01]`; play and task headers,
  which belong to every host, are not);
- stops posting output once the thread holds `max_thread_posts` posts or
  `max_thread_bytes` of output, and at the end says how much was left out and uploads the
  full log as a file (files_upload_v2) in the thread;
- shows the ending (final status, recap, error) the moment the job ends; output still
  waiting is then cut to `tail_posts` posts (the rest goes into the uploaded file), so the
  thread does not trickle on for seconds after the job is over;
- posts ONE failure message in the thread for the run's incident tickets (each with its
  Take / Resolve / Retry buttons, `slackui.tickets.failure_message`), not one per host.

Slack calls are therefore bounded by the run's duration, not by its number of hosts: one
message (posted at launch), updates at most every `update_interval`, thread posts paced per
channel, and at the end one final update, one failure message and at most one file.

Slack being slow, down or rate limiting (429s are retried by slack-sdk's
RateLimitErrorRetryHandler, honouring Retry-After) never slows the playbook: the producer
side only appends to a bounded buffer under a lock; what does not fit is counted and
summarised, never waited for.

Where the run has no message yet (the first post failed at launch), the notifier posts it:
in the run's channel, else the configured jobs channel, else the requester's DM with the bot.

Everything that reads the caller's ORM objects (the jobs, the tickets) is rendered or
copied (`snapshot`) in the caller's thread; the notifier thread reads its copies, and the
database only through the message owner's own sessions. `JobNotifier` is the one-job form
of the same notifier (the older interface). `redraw_run` and `post_in_thread` are the
one-shot forms the clock (reaper, approval expiry) and the "waiting for" note use.

A **preview** run (the check-mode run of a production request, `core.jobs`) has no
message of its own and no `RunNotifier`: when it ends, `preview_finished` asks the owner
of the approval card's message to redraw it (it then shows the preview's summary,
`core.previews`) and uploads the preview's whole stored output — `job_logs`, already
redacted — as a file in the card's thread. Nothing else about a preview is posted.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from sqlalchemy.orm import Session, sessionmaker

from core.progress import RunProgress
from db.models import Job, Playbook, Server, Ticket, User
from slackui import message_owner
from slackui.blocks import escape, short_id
from slackui.job_message import run_message
from slackui.tickets import failure_message
from workers.pacing import PACER, Pacer
from workers.pacing import ChannelPacer as ChannelPacer  # re-exported for callers and tests

log = logging.getLogger(__name__)

SLACK_ERRORS = (SlackClientError, OSError, http.client.HTTPException, ValueError)
SECTION_CHARS = 2_900
SECTIONS_PER_POST = 4
MAX_UPLOAD_CHARS = 20_000_000
UPDATES_KEY = "\x00chat.update"  # a pacer key no channel id can collide with
HOST_MARK = " │ "  # between a host and its line in a run of several hosts

Payload = tuple[str, list[dict[str, Any]]]


def make_client(token: str, api_url: str) -> WebClient:
    """A WebClient for `api_url` that honours 429 Retry-After and retries a dropped connection."""
    return WebClient(
        token=token,
        base_url=api_url,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2),
                        ConnectionErrorRetryHandler(max_retry_count=1)],
    )


def snapshot(job: Job) -> Job:
    """A detached copy of the job (and its playbook, server, user) safe to read from the
    notifier thread while the worker's session keeps changing the original."""
    playbook = Playbook(name=job.playbook.name, file_path=job.playbook.file_path,
                        file_hash=job.playbook.file_hash)
    server = Server(hostname=job.server.hostname, environment=job.server.environment)
    user = User(username=job.user.username, slack_user_id=job.user.slack_user_id)
    copy = Job(
        id=job.id, job_id=job.job_id, run_id=job.run_id, server_id=job.server_id,
        status=job.status, check_mode=job.check_mode,
        error_message=job.error_message, started_at=job.started_at,
        completed_at=job.completed_at, created_at=job.created_at, recap=job.recap,
        cancel_requested=job.cancel_requested, extra_vars=dict(job.extra_vars or {}),
        slack_channel_id=job.slack_channel_id, slack_message_ts=job.slack_message_ts,
    )
    copy.playbook, copy.server, copy.user = playbook, server, user
    return copy


@dataclass
class Ending:
    """What `finish()` hands over: the failure message to post in the thread, the full
    log (the final message is drawn from the database)."""

    ticket: Payload | None
    full_log: Callable[[], str] | None
    total_lines: int


@dataclass(frozen=True)
class Limits:
    post_interval: float = 1.0
    update_interval: float = 2.0
    max_thread_posts: int = 20
    max_thread_bytes: int = 30_000  # about 300 lines: what a person reads in a thread
    max_buffer_bytes: int = 256_000
    give_up_after_failures: int = 5
    updates_pace: float = 0.5  # progress updates of all runs together: ≤ 2 a second
    tail_posts: int = 2  # output posts still made after the run ended


class RunNotifier:
    """Follows one run in Slack from its own thread. Every public method returns at once.

    jobs: every job of the run (they share one channel message). session_factory: the
    database the run's message is drawn from (`slackui.message_owner`).
    on_message_posted(channel, ts): the notifier had to post the run's message itself
    (record it on every job of the run). on_tickets_posted(channel, ts): where the failure
    message went (record it on every ticket it shows, so their buttons redraw it whole).
    """

    def __init__(self, client: WebClient, jobs: Sequence[Job], *,
                 session_factory: sessionmaker[Session],
                 jobs_channel: str | None = None, limits: Limits | None = None,
                 pacer: Pacer = PACER,
                 on_message_posted: Callable[[str, str], None] | None = None,
                 on_tickets_posted: Callable[[str, str], None] | None = None) -> None:
        if not jobs:
            raise ValueError("a run has at least one job")
        self._client = client
        self._factory = session_factory
        self._jobs = [snapshot(job) for job in jobs]
        self._multi = len(self._jobs) > 1
        self._jobs_channel = jobs_channel
        self._on_message_posted = on_message_posted
        self._on_tickets_posted = on_tickets_posted
        self.limits = limits or Limits()
        self._pacer = pacer
        posted = next((j for j in self._jobs if j.slack_message_ts), self._jobs[0])
        self.channel: str | None = posted.slack_channel_id or self._jobs[0].slack_channel_id
        self.ts: str | None = posted.slack_message_ts
        self._cond = threading.Condition()
        self._buffer: deque[str] = deque()
        self._buffer_bytes = 0
        self._accepted = 0  # lines taken into the buffer
        self._omitted = 0  # lines not shown in the thread
        self._thread_bytes = 0
        self._posts = 0
        self._progress: RunProgress | None = None
        self._progress_dirty = True  # show "running" at once
        self._last_update = 0.0
        self._post_slot_at = 0.0  # when the pacer next may give this channel a slot
        self._update_slot_at = 0.0  # when the pacer next may give chat.update a slot
        self._ending: Ending | None = None
        self._failures = 0
        self._slack_gone = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"notifier-{short_id(self._run_id)}")
        self._done = threading.Event()
        _register(self)
        self._thread.start()

    # producer side (never blocks on Slack) ------------------------------------------------

    @property
    def _run_id(self) -> str:
        return self._jobs[0].run_id or self._jobs[0].job_id

    @property
    def _what(self) -> str:
        """How log lines and files name what this notifier follows."""
        first = self._jobs[0]
        return f"run {short_id(self._run_id)}" if self._multi else f"job {short_id(first.job_id)}"

    def lines(self, lines: Sequence[tuple[str, str]] | Sequence[str],
              host: str | None = None) -> None:
        """Queue output lines (already redacted) for the thread; beyond the budget they are
        only counted. `host`: the host they belong to, shown before each line when the
        run has several hosts (None for play/task headers and run-wide lines)."""
        if not lines:
            return
        mark = f"{host}{HOST_MARK}" if host and self._multi else ""
        with self._cond:
            for item in lines:
                text = mark + (item[0] if isinstance(item, tuple) else item)
                cost = len(text) + 1
                if (self._slack_gone
                        or self._thread_bytes + self._buffer_bytes + cost > self.limits.max_thread_bytes
                        or self._buffer_bytes + cost > self.limits.max_buffer_bytes
                        or self._posts >= self.limits.max_thread_posts):
                    self._omitted += 1
                    continue
                self._buffer.append(text)
                self._buffer_bytes += cost
                self._accepted += 1
            self._cond.notify()

    def progress(self, progress: RunProgress) -> None:
        """The latest progress; only the newest is shown."""
        with self._cond:
            self._progress = progress
            self._progress_dirty = True
            self._cond.notify()

    def update_jobs(self, jobs: Sequence[Job]) -> None:
        """Some jobs of the run changed (e.g. one started): re-render from copies of them."""
        with self._cond:
            self._merge([snapshot(job) for job in jobs])
            self._progress_dirty = True
            self._cond.notify()

    def mark_cancelling(self) -> None:
        """Cancel was requested: show "cancelling" until the run stops."""
        with self._cond:
            for job in self._jobs:
                job.cancel_requested = True
            self._progress_dirty = True
            self._cond.notify()

    def finish(self, jobs: Sequence[Job], *, tickets: Sequence[Ticket] = (),
               full_log: Callable[[], str] | None = None, total_lines: int = 0) -> None:
        """The run ended: show its final state, then the output's tail, the summary and
        log file if output was left out, and one failure message for `tickets` (the
        incident tickets of its failed jobs). `jobs`: the run's jobs as they ended (any
        not given keep their last known state). Renders here, in the caller's thread."""
        finals = [snapshot(job) for job in jobs]
        failure = failure_message(list(tickets)) if tickets else None
        self._finish(finals, failure, full_log, total_lines)

    def _finish(self, finals: list[Job], failure: Payload | None,
                full_log: Callable[[], str] | None, total_lines: int) -> None:
        with self._cond:
            self._merge(finals)
            self._ending = Ending(failure, full_log, total_lines)
            self._cond.notify()

    def _merge(self, copies: Sequence[Job]) -> None:
        """Replace the copies of these jobs (lock held); unknown ones join the run."""
        by_id = {job.job_id: job for job in copies}
        self._jobs = [by_id.pop(job.job_id, job) for job in self._jobs] + list(by_id.values())
        self._multi = len(self._jobs) > 1

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the notifier to finish its work; True if it did."""
        return self._done.wait(timeout)

    # the notifier thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._ensure_message()
            final_shown = False
            while True:
                with self._cond:
                    wait = self._next_wait()
                    if wait > 0:
                        self._cond.wait(wait)
                    ending = self._ending
                if ending is not None and not final_shown:
                    # the ending is shown at once; the output backlog follows (or is cut)
                    self._show_final(ending)
                    final_shown = True
                    self._cut_backlog()
                if self._buffer:
                    self._post_lines()
                if ending is None and self._due_update():
                    self._update_message()
                if ending is not None and not self._has_lines_to_post():
                    self._end(ending)
                    return
        finally:
            self._done.set()
            _unregister(self)

    def _cut_backlog(self) -> None:
        """At the end, keep at most `tail_posts` more posts of output waiting to be posted;
        the rest is counted (and the full log uploaded) rather than trickled out for
        seconds after the job is over."""
        room = self.limits.tail_posts * SECTIONS_PER_POST * (SECTION_CHARS - 100)
        with self._cond:
            kept = 0
            cut = 0
            for index, line in enumerate(self._buffer):
                kept += len(line) + 1
                if kept > room:
                    cut = len(self._buffer) - index
                    break
            for _ in range(cut):
                self._buffer_bytes -= len(self._buffer.pop()) + 1
            self._omitted += cut

    def _next_wait(self) -> float:
        if self._ending is not None and not self._buffer:
            return 0.0
        now = time.monotonic()
        waits = [5.0]
        if self._buffer and self.channel and self.ts and not self._slack_gone:
            waits.append(max(0.05, min(self._post_slot_at - now,
                                       self.limits.post_interval, 1.0)))
        if self._progress_dirty:
            waits.append(max(0.05, self._last_update + self.limits.update_interval - now,
                             min(self._update_slot_at - now, 1.0)))
        return min(waits)

    def _has_lines_to_post(self) -> bool:
        with self._cond:
            if self._slack_gone or not (self.channel and self.ts):
                self._omitted += len(self._buffer)
                self._buffer.clear()
                self._buffer_bytes = 0
            return bool(self._buffer)

    def _due_update(self) -> bool:
        with self._cond:
            due = (self._progress_dirty and self._ending is None
                   and time.monotonic() - self._last_update >= self.limits.update_interval)
        if not due or time.monotonic() < self._update_slot_at:
            return False
        # chat.update is rate limited per workspace: one pace shared by every job
        wait = self._pacer.try_take(UPDATES_KEY, self.limits.updates_pace)
        if wait > 0:
            self._update_slot_at = time.monotonic() + wait
            return False
        return True

    def _ensure_message(self) -> None:
        if self.ts:
            return
        with self._cond:
            jobs, progress = list(self._jobs), self._progress
        text, blocks = run_message(jobs, progress)
        user = jobs[0].user
        candidates = [c for c in (self.channel, self._jobs_channel) if c]
        if user.slack_user_id:
            candidates.append(f"@dm:{user.slack_user_id}")
        for channel in candidates:
            try:
                if channel.startswith("@dm:"):
                    opened = self._client.conversations_open(users=channel[4:])
                    channel = opened["channel"]["id"]
                response = self._client.chat_postMessage(channel=channel, text=text,
                                                         blocks=blocks)
            except SLACK_ERRORS as exc:
                log.warning("could not post the message of %s in %s: %s",
                            self._what, channel, _reason(exc))
                continue
            self.channel, self.ts = response["channel"], response["ts"]
            self._last_update = time.monotonic()
            self._progress_dirty = False
            if self._on_message_posted is not None:
                self._on_message_posted(self.channel, self.ts)
            return
        log.warning("%s has no Slack message: its output is only in job_logs", self._what)

    def _post_lines(self) -> None:
        if not (self.channel and self.ts) or self._slack_gone:
            return
        if time.monotonic() < self._post_slot_at:  # the pacer said no slot before then
            return
        wait = self._pacer.try_take(self.channel, self.limits.post_interval)
        self._post_slot_at = time.monotonic() + (wait or self.limits.post_interval)
        if wait > 0:
            return
        with self._cond:
            chunk = self._take_chunk()
        if not chunk:
            return
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": section}}
                  for section in chunk]
        size = sum(len(s) for s in chunk)
        if self._call(self._client.chat_postMessage, channel=self.channel, thread_ts=self.ts,
                      text=f"Output of {self._what}", blocks=blocks):
            with self._cond:
                self._posts += 1
                self._thread_bytes += size
        else:
            with self._cond:
                self._omitted += sum(s.count("\n") - 1 for s in chunk)

    def _take_chunk(self) -> list[str]:
        """Up to SECTIONS_PER_POST code-block sections from the buffer (lock held)."""
        sections: list[str] = []
        while self._buffer and len(sections) < SECTIONS_PER_POST:
            body: list[str] = []
            size = 8
            while self._buffer:
                line = escape(self._buffer[0]).replace("```", "'''")
                if len(line) > SECTION_CHARS - 20:
                    line = line[: SECTION_CHARS - 21] + "…"
                if body and size + len(line) + 1 > SECTION_CHARS:
                    break
                raw = self._buffer.popleft()
                self._buffer_bytes -= len(raw) + 1
                body.append(line)
                size += len(line) + 1
            sections.append("```\n" + ("\n".join(body) or " ") + "\n```")
        return sections

    def _update_message(self) -> None:
        with self._cond:
            self._progress_dirty = False
        self._last_update = time.monotonic()
        if not (self.channel and self.ts) or self._slack_gone:
            return
        self._redraw()

    def _show_final(self, ending: Ending) -> None:
        """The run's message in its final state (posted now if it never was)."""
        if not (self.channel and self.ts):
            self._ensure_message()  # renders the final jobs
            return
        self._slack_gone = False  # one more try for what matters most
        self._redraw()

    def _redraw(self) -> None:
        """Ask the message's owner to draw the run as the database holds it, with this
        notifier's live progress (a newer state drawn by someone else wins)."""
        if not (self.channel and self.ts):
            return
        with self._cond:
            progress = self._progress
        self._call(message_owner.redraw, client=self._client, factory=self._factory,
                   run_id=self._run_id, progress=progress, message=(self.channel, self.ts))

    def _end(self, ending: Ending) -> None:
        if not (self.channel and self.ts):
            return
        omitted = self._omitted
        if omitted:
            shown = ending.total_lines - omitted if ending.total_lines else self._accepted
            note = (f"{omitted:,} more output lines are not in this thread "
                    f"({max(shown, 0):,} are).")
            log_text = _read_log(ending.full_log)
            if log_text is not None:
                self._upload(log_text, note, ending.total_lines)
            else:
                self._call(self._client.chat_postMessage, channel=self.channel,
                           thread_ts=self.ts, text=note + " The full log is in `/job "
                           f"{short_id(self._jobs[0].job_id)}`.")
        if ending.ticket is not None:
            ticket_text, ticket_blocks = ending.ticket
            response = self._call(self._client.chat_postMessage, channel=self.channel,
                                  thread_ts=self.ts, text=ticket_text, blocks=ticket_blocks)
            if response is not None and self._on_tickets_posted is not None:
                self._on_tickets_posted(response["channel"], response["ts"])

    def _upload(self, text: str, note: str, total_lines: int) -> None:
        if len(text) > MAX_UPLOAD_CHARS:
            text = text[:MAX_UPLOAD_CHARS] + "\n…[log cut at 20 MB; the rest is in job_logs]\n"
        name = f"{self._what.replace(' ', '-')}.log"
        self._call(self._client.files_upload_v2, channel=self.channel, thread_ts=self.ts,
                   content=text, filename=name, title=f"Full log of {self._what} "
                   f"({total_lines:,} lines)",
                   initial_comment=f"{note} The full log ({total_lines:,} lines) is attached "
                                   f"as {name}.")

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One Slack call; failures are logged and counted, never raised."""
        try:
            response = method(**kwargs)
        except SLACK_ERRORS as exc:
            self._failures += 1
            log.warning("Slack call for %s failed (%s): %s", self._what,
                        getattr(method, "__name__", "call"), _reason(exc))
            if (self._failures >= self.limits.give_up_after_failures
                    or isinstance(exc, SlackApiError) and _fatal(exc)):
                self._slack_gone = True
            return None
        self._failures = 0
        return response


class JobNotifier(RunNotifier):
    """The notifier of a run of one job, with the one-job interface (`finish(job,
    ticket=payload)`); same guarantees as RunNotifier."""

    def __init__(self, client: WebClient, job: Job, *,
                 session_factory: sessionmaker[Session], jobs_channel: str | None = None,
                 on_message_posted: Callable[[str, str], None] | None = None,
                 on_ticket_posted: Callable[[str, str], None] | None = None,
                 limits: Limits | None = None, pacer: Pacer = PACER) -> None:
        super().__init__(client, [job], session_factory=session_factory,
                         jobs_channel=jobs_channel, limits=limits, pacer=pacer,
                         on_message_posted=on_message_posted,
                         on_tickets_posted=on_ticket_posted)

    def finish(self, job: Job, *, ticket: Payload | None = None,  # type: ignore[override]
               full_log: Callable[[], str] | None = None, total_lines: int = 0) -> None:
        """The job ended: as `RunNotifier.finish`, with its ticket already rendered."""
        self._finish([snapshot(job)], ticket, full_log, total_lines)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", exc))
    return f"{type(exc).__name__}: {exc}"


def _fatal(exc: SlackApiError) -> bool:
    """Errors that will not go away during this job (no point retrying every second)."""
    return exc.response.get("error") in {
        "not_in_channel", "channel_not_found", "is_archived", "invalid_auth",
        "account_inactive", "token_revoked", "message_not_found", "no_permission",
    }


def _read_log(full_log: Callable[[], str] | None) -> str | None:
    if full_log is None:
        return None
    try:
        return full_log()
    except Exception:  # reading the log for the upload must not lose the final update
        log.exception("could not read the full log for the upload")
        return None


# one-shot notifications (the reaper, approval expiry, waiting jobs) ----------------------


def redraw_run(client: WebClient, factory: sessionmaker[Session], run_id: str, *,
               waiting_for: Sequence[str] = ()) -> bool:
    """Ask the run message's owner to draw it from the run's current state, once
    (synchronous): after the reaper or an approval expiry, or "waiting for <server>".

    Returns False (and logs) when Slack refused or could not be reached, or the drawing
    was not needed (no message, a newer state drawn meanwhile).
    """
    try:
        return message_owner.redraw(client, factory, run_id, waiting_for=waiting_for)
    except SLACK_ERRORS as exc:
        log.warning("could not update the Slack message of run %s: %s", run_id, _reason(exc))
        return False


def preview_finished(client: WebClient, factory: sessionmaker[Session],
                     approvals: Sequence[Ticket], full_log: Callable[[], str]) -> None:
    """A preview run ended: redraw the card of each approval run it previews, and upload
    its stored output (`full_log`, read from `job_logs`) in the thread of each card (once
    per card). Slack failures are logged, never raised."""
    cards: dict[str, tuple[str, str, str]] = {}
    for ticket in approvals:
        job = ticket.job
        if job is not None and job.slack_channel_id and job.slack_message_ts:
            cards.setdefault(job.run_id, (job.slack_channel_id, job.slack_message_ts,
                                          job.playbook.name))
    for run_id in {t.job.run_id for t in approvals if t.job is not None}:
        redraw_run(client, factory, run_id)
    if not cards:
        return
    text = full_log()
    if len(text) > MAX_UPLOAD_CHARS:
        text = text[:MAX_UPLOAD_CHARS] + "\n…[log cut at 20 MB; the rest is in job_logs]\n"
    for run_id, (channel, ts, playbook) in cards.items():
        name = f"preview-{playbook}-{short_id(run_id)}.log".replace(" ", "-")
        try:
            client.files_upload_v2(channel=channel, thread_ts=ts, content=text, filename=name,
                                   title=f"Preview (check mode, diff) of {playbook}",
                                   initial_comment="The preview (check mode) of this request "
                                                   f"ended; its full output is attached as "
                                                   f"{name}.")
        except SLACK_ERRORS as exc:
            log.warning("could not upload the preview of run %s: %s", run_id, _reason(exc))


def post_in_thread(client: WebClient, job: Job, message: Payload, *,
                   on_posted: Callable[[str, str], None] | None = None) -> bool:
    """Post a message (a reaped job's ticket) in the thread of the job's run message
    (synchronous). Returns False (and logs) when it has no message or Slack refused."""
    if not (job.slack_channel_id and job.slack_message_ts):
        return False
    try:
        response = client.chat_postMessage(channel=job.slack_channel_id,
                                           thread_ts=job.slack_message_ts,
                                           text=message[0], blocks=message[1])
    except SLACK_ERRORS as exc:
        log.warning("could not post in the thread of job %s: %s", job.job_id, _reason(exc))
        return False
    if on_posted is not None:
        on_posted(response["channel"], response["ts"])
    return True


# live notifiers, for a graceful shutdown -------------------------------------------------

_live_lock = threading.Lock()
_live: set[RunNotifier] = set()


def _register(notifier: RunNotifier) -> None:
    with _live_lock:
        _live.add(notifier)


def _unregister(notifier: RunNotifier) -> None:
    with _live_lock:
        _live.discard(notifier)


def drain(timeout: float = 10.0) -> bool:
    """Wait until every notifier of this process has finished (shutdown, tests)."""
    deadline = time.monotonic() + timeout
    while True:
        with _live_lock:
            live = list(_live)
        if not live:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        live[0].join(min(remaining, 0.5))
