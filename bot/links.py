"""The live log links of this install, from the settings (`core.log_links.LogLinks`).

The signing key is SLACK_SIGNING_SECRET (with a salt of the links' own), so an install needs
no extra secret; PLAYBOT_PUBLIC_URL says where links point; PLAYBOT_LOG_LINK_MINUTES how
long they last.
"""

from __future__ import annotations

from datetime import timedelta

from bot.settings import Settings
from core.log_links import LogLinks


def log_links(settings: Settings) -> LogLinks:
    return LogLinks(secret=settings.slack_signing_secret or "",
                    public_url=settings.playbot_public_url,
                    ttl=timedelta(minutes=settings.playbot_log_link_minutes))
