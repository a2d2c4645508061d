"""What the listeners need from the outside, passed in by the app factory (no globals).

`Deps` carries the database session factory, the job queue, the launch policy derived from
the settings, where job messages go when the bot cannot post in a channel, and an observer
for metrics. Tests build one with their own queue and database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from core.identity import Install
from core.queue import JobQueue


class Observer(Protocol):
    """Receives what the handlers want counted (Prometheus in the web process)."""

    def job_launched(self, outcome: str, count: int = 1) -> None: ...

    def error(self, where: str) -> None: ...


class NullObserver:
    def job_launched(self, outcome: str, count: int = 1) -> None:
        pass

    def error(self, where: str) -> None:
        pass


@dataclass(frozen=True)
class Deps:
    """Dependencies of every listener.

    policy: a `core.jobs.LaunchPolicy` (self-approval, approval TTL, max targets, playbook dir).
    jobs_channel: channel id for job messages when the bot cannot post where the command was
        typed; unset means the user's DM with the bot.
    auto_provision: create unknown Slack users as viewers on first contact.
    install: the Slack workspace / Grid organisation served (`core.identity.Install`,
        configured or learned from `auth.test` at start); requests from elsewhere are
        refused before any user is looked up or provisioned. None checks nothing.
    log_links: a `core.log_links.LogLinks` making the live log links the Live log button
        hands out; None: no public URL is known, the button says how to set one.
    after_ack: `send(name, request)`, handing the work after the ack (the listener's lazy
        function `name`) to the broker before the ack goes out (`bot.after_ack`); None: the
        listeners register that work as Bolt lazy listeners (the app it is dispatched to).
    """

    session_factory: sessionmaker[Session]
    queue: JobQueue
    policy: Any
    jobs_channel: str | None = None
    auto_provision: bool = True
    observer: Observer = field(default_factory=NullObserver)
    install: Install | None = None
    log_links: Any = None
    after_ack: Any = None
