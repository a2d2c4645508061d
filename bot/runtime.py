"""The running web/socket process: settings, database, Slack client, job queue, Bolt app.

`build_runtime(settings)` wires them once at start; the web server, Socket Mode and the
console take a Runtime. Tests pass their own Slack client (pointed at FakeSlack) and queue.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.after_ack import AfterAckProcesses
from bot.background import BackgroundExecutor
from bot.metrics import PrometheusObserver
from bot.settings import Settings
from core.queue import JobQueue
from db.session import make_engine, make_session_factory
from handlers.deps import Deps, Observer

if TYPE_CHECKING:
    from slack_bolt import App

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
    after_ack: AfterAckProcesses | None = None  # else the work after the ack runs on `background`
    app: App | None = None

    def deps(self) -> Deps:
        """The listeners' dependencies, derived from this runtime's settings."""
        return build_deps(self.settings, self.session_factory, self.queue, self.observer)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the work after every ack so far is done (True) or `timeout` (False)."""
        if not self.background.wait_idle(timeout):
            return False
        return self.after_ack is None or self.after_ack.wait_idle(timeout)

    def close(self) -> None:
        """Let background work finish (bounded), then release the database."""
        self.background.wait_idle(timeout=30)
        self.background.shutdown(wait=True, cancel_futures=False)
        if self.after_ack is not None:
            self.after_ack.close(timeout=30)
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
    )


def default_queue(settings: Settings) -> JobQueue:
    """The workers' Dramatiq queue: Redis at REDIS_URL, or the in-process broker."""
    from workers.queue import DramatiqJobQueue

    return DramatiqJobQueue(settings.redis_url)


def build_runtime(settings: Settings, *, client: WebClient | None = None,
                  queue: JobQueue | None = None,
                  session_factory: sessionmaker[Session] | None = None,
                  observer: Observer | None = None, verify_requests: bool = True,
                  after_ack_processes: int = 0) -> Runtime:
    """Wire the process: database engine, Slack client, queue and the Bolt app.

    `client`, `queue` and `session_factory` replace the defaults (tests, the console).
    after_ack_processes: run the work after each ack in that many processes of its own
        (`bot.after_ack`; they build their own client, queue and database from `settings`,
        so it cannot be combined with the three replacements); 0 keeps it on threads.
    """
    from bot.app import create_app

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
    )
    if after_ack_processes:
        if client is not None or queue is not None:
            raise ValueError("after-ack processes build their own Slack client and queue")
        runtime.after_ack = AfterAckProcesses(settings, after_ack_processes, runtime.observer)
    runtime.app = create_app(settings, client=runtime.client, runtime=runtime,
                             verify_requests=verify_requests)
    return runtime


def freeze_startup_heap() -> None:
    """Keep everything built so far (modules, the app, the engine: ~100,000 objects) out of
    the garbage collector's full passes, for a long-running process about to serve.

    Those passes walk every tracked object; over the startup heap each took ~100 ms in the
    web process, during which no request thread could ack (bench: ack_latency). What is
    frozen lives as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
