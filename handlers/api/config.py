"""What the API app needs from the process that serves it (passed in; no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient

from core.log_links import LogLinks
from handlers.deps import Deps


@dataclass(frozen=True)
class ApiConfig:
    """deps: the listeners' dependencies (database, queue, launch policy, jobs channel).
    client: the Slack Web API client (approval cards and run messages of API launches).
    links: signs and checks live log links.
    api_channel: where the messages of API launches go (unset: the jobs channel, else the
        caller's DM with the bot).
    rate_limit: per token, in the `limits` notation ("300/minute").
    redis_url: the limiter's shared storage; None keeps counts in this process.
    """

    deps: Deps
    client: WebClient
    links: LogLinks
    api_channel: str | None = None
    rate_limit: str = "300/minute"
    redis_url: str | None = None
