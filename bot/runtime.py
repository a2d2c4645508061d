"""The running web/socket process: settings, database, Slack client, job queue, Bolt app,
and where the work after each ack goes (`bot.after_ack`).

`build_runtime(settings)` wires them once at start; the web server, Socket Mode, the
console and `playbot worker`'s after-ack consumer take a Runtime. Tests pass their own Slack
client (pointed at FakeSlack) and queue. Imports go one way: runtime -> app, after_ack.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.after_ack import (
    AfterAckConsumer,
    AfterAckMode,
    InProcessAfterAck,
    MemoryRequestStore,
    Sender,
    declare_sender,
)
from bot.app import create_app
from bot.background import BackgroundExecutor
from bot.links import log_links
from bot.metrics import PrometheusObserver
from bot.settings import Settings
from core.queue import JobQueue
from db.session import make_engine, make_session_factory
from handlers.deps import Deps, Observer

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.request import BoltRequest

log = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 10


@dataclass
class Runtime:
    """Everything a Playbot web/socket process holds for its lifetime."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    client: WebClient
    queue: JobQueue
    background: BackgroundExecutor = field(default_factory=BackgroundExecutor)
    observer: Observer = field(default_factory=PrometheusObserver)
    after_ack_mode: AfterAckMode = AfterAckMode.IN_PROCESS
    in_process: InProcessAfterAck | None = None  # the after-ack consumer of IN_PROCESS
    app: App | None = None

    def deps(self) -> Deps:
        """The listeners' dependencies, derived from this runtime's settings."""
        return build_deps(self.settings, self.session_factory, self.queue, self.observer)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the work after every ack so far is done (True) or `timeout` (False).

        (In BROKER mode that work is another process's: only a fallback can be waited for.)
        """
        if self.in_process is not None and not self.in_process.wait_idle(timeout):
            return False
        return self.background.wait_idle(timeout)

    def close(self) -> None:
        """Let the work after the acks so far finish (bounded), then release the database."""
        if self.in_process is not None:
            self.in_process.close(timeout=30)
        self.background.wait_idle(timeout=30)
        self.background.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()


def make_client(settings: Settings) -> WebClient:
    """The Slack Web API client: SLACK_API_URL, 429s retried after Retry-After."""
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                       timeout=SLACK_TIMEOUT_SECONDS)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def launch_policy(settings: Settings):  # type: ignore[no-untyped-def]
    """The core's LaunchPolicy from the settings."""
    from core.jobs import LaunchPolicy

    return LaunchPolicy(
        admins_self_approve=settings.playbot_admins_self_approve,
        approval_ttl=timedelta(minutes=settings.playbot_approval_ttl_minutes),
        production_approvers=settings.playbot_production_approvers,
        max_targets=settings.playbot_max_targets,
        playbook_dir=settings.playbook_dir,
    )


def build_deps(settings: Settings, session_factory: sessionmaker[Session],
               queue: JobQueue, observer: Observer) -> Deps:
    return Deps(
        session_factory=session_factory,
        queue=queue,
        policy=launch_policy(settings),
        jobs_channel=settings.playbot_jobs_channel,
        auto_provision=settings.playbot_auto_provision,
        observer=observer,
        log_links=log_links(settings),
    )


def default_queue(settings: Settings) -> JobQueue:
    """The workers' Dramatiq queue: Redis at REDIS_URL, or the in-process broker."""
    from workers.queue import DramatiqJobQueue

    return DramatiqJobQueue(settings.redis_url)


def build_runtime(settings: Settings, *, client: WebClient | None = None,
                  queue: JobQueue | None = None,
                  session_factory: sessionmaker[Session] | None = None,
                  observer: Observer | None = None, verify_requests: bool = True,
                  after_ack: AfterAckMode = AfterAckMode.IN_PROCESS) -> Runtime:
    """Wire the process: database engine, Slack client, queue and the Bolt app.

    `client`, `queue` and `session_factory` replace the defaults (tests, the console).
    after_ack: IN_PROCESS (the default: this process's threads run the after-ack actor),
        BROKER (send it to Redis for `playbot worker`; needs REDIS_URL), or CONSUMER (this
        runtime's app is where `playbot worker` dispatches: no sending, no second app).
    verify_requests: False only for a CONSUMER, whose requests come from a process that
        verified them.
    """
    if session_factory is not None:
        engine = session_factory.kw["bind"]
    else:
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        client=client or make_client(settings),
        queue=queue if queue is not None else default_queue(settings),
        background=BackgroundExecutor(settings.playbot_background_threads),
        observer=observer if observer is not None else PrometheusObserver(),
        after_ack_mode=after_ack,
    )
    if after_ack is AfterAckMode.CONSUMER:
        runtime.app = _app(runtime, verify_requests)
        return runtime
    # The app the work is dispatched to: the same listeners, no signature check (its
    # requests were verified on the way in; a backlog may outlast their timestamps).
    work_app = _app(runtime, verify_requests=False)
    local = AfterAckConsumer(work_app, MemoryRequestStore())

    def fallback(payload: str) -> None:
        runtime.background.submit(local.dispatch, payload, label="fallback")

    if after_ack is AfterAckMode.BROKER:
        if not settings.redis_url:
            raise ValueError("after-ack work through the broker needs REDIS_URL")
        from workers.broker import setup_broker

        sender = Sender(declare_sender(setup_broker(settings.redis_url)), fallback,
                        on_fallback=lambda: runtime.observer.error("after_ack_queue"))
    else:
        in_process = InProcessAfterAck(settings.playbot_background_threads)
        sender = Sender(in_process.actor, fallback, in_flight=in_process.in_flight)
        in_process.serve(work_app)
        runtime.in_process = in_process
    runtime.app = _app(runtime, verify_requests, after_ack=sender.send)
    return runtime


def _app(runtime: Runtime, verify_requests: bool,
         after_ack: Callable[[str, BoltRequest], None] | None = None) -> App:
    deps = replace(runtime.deps(), after_ack=after_ack)
    return create_app(runtime.settings, client=runtime.client, deps=deps,
                      listener_executor=runtime.background, verify_requests=verify_requests)


def freeze_startup_heap() -> None:
    """Keep everything built so far (modules, the app, the engine) out of
    the garbage collector's full passes, for a long-running process about to serve.

    Those passes walk every tracked object; over the startup heap each one stalls every
    request thread long enough to delay acks (bench/README.md, the ack figure). What is
    frozen lives as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
