"""Talking back to Slack: replies only the caller sees, and channel posts with a fallback.

A reply goes through the request's `response_url` when there is one (it works in every
channel, even those the bot was not invited to), else `chat.postEphemeral` in the channel,
else the caller's DM with the bot. Channel posts that fail because the bot is not in the
channel (private channel, a DM between people, archived) are redirected to the configured
jobs channel or the caller's DM, and the caller is told how to fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.context import Caller

log = logging.getLogger(__name__)

# Slack errors meaning "the bot cannot post in this conversation".
CHANNEL_ERRORS = frozenset({
    "not_in_channel", "channel_not_found", "is_archived", "restricted_action",
    "cannot_dm_bot", "messages_tab_disabled", "ekm_access_denied", "team_access_not_granted",
})

Blocks = list[dict[str, Any]] | None


def slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or "unknown_error")


@dataclass
class Posted:
    """Where a message landed; `redirected_from` is set when it went to a fallback."""

    channel: str
    ts: str
    redirected_from: str | None = None
    reason: str | None = None


class Replier:
    """Sends messages on behalf of one request."""

    def __init__(self, client: WebClient, caller: Caller,
                 respond: Callable[..., Any] | None = None,
                 jobs_channel: str | None = None) -> None:
        self.client = client
        self.caller = caller
        self.respond = respond if caller.response_url else None
        self.jobs_channel = jobs_channel

    # only the caller sees these --------------------------------------------------------
    def ephemeral(self, text: str, blocks: Blocks = None) -> None:
        """A reply only the caller sees, wherever the request came from."""
        if self.respond is not None:
            self.respond(text=text, blocks=blocks, response_type="ephemeral",
                         replace_original=False)
            return
        channel = self.caller.channel_id
        if channel:
            try:
                self.client.chat_postEphemeral(channel=channel, user=self.caller.slack_user_id,
                                               text=text, blocks=blocks)
                return
            except SlackApiError as exc:
                if slack_error(exc) not in CHANNEL_ERRORS | {"user_not_in_channel"}:
                    raise
        self.direct(text, blocks)

    def direct(self, text: str, blocks: Blocks = None) -> Posted:
        """A message in the caller's DM with the bot."""
        channel = self.dm_channel()
        response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
        return Posted(channel=response["channel"], ts=response["ts"])

    def dm_channel(self) -> str:
        opened = self.client.conversations_open(users=self.caller.slack_user_id)
        return opened["channel"]["id"]

    # messages everyone in the channel sees ---------------------------------------------
    def post(self, channel: str | None, text: str, blocks: Blocks = None) -> Posted:
        """Post in `channel`; if the bot cannot, post in the fallback and tell the caller."""
        if channel:
            try:
                response = self.client.chat_postMessage(channel=channel, text=text,
                                                        blocks=blocks)
                return Posted(channel=response["channel"], ts=response["ts"])
            except SlackApiError as exc:
                reason = slack_error(exc)
                if reason not in CHANNEL_ERRORS:
                    raise
        else:
            reason = "no_channel"
        posted = self._post_fallback(text, blocks)
        posted.redirected_from, posted.reason = channel, reason
        if channel:  # no channel at all (App Home): the fallback is simply where it goes
            self._explain_redirect(channel, posted, reason)
        return posted

    def _post_fallback(self, text: str, blocks: Blocks) -> Posted:
        if self.jobs_channel:
            try:
                response = self.client.chat_postMessage(channel=self.jobs_channel, text=text,
                                                        blocks=blocks)
                return Posted(channel=response["channel"], ts=response["ts"])
            except SlackApiError as exc:
                if slack_error(exc) not in CHANNEL_ERRORS:
                    raise
                log.warning("cannot post in PLAYBOT_JOBS_CHANNEL %s (%s); using the DM",
                            self.jobs_channel, slack_error(exc))
        return self.direct(text, blocks)

    def _explain_redirect(self, channel: str | None, posted: Posted, reason: str) -> None:
        where = (f"<#{posted.channel}>" if posted.channel == self.jobs_channel
                 else "our direct messages")
        if channel and channel.startswith("D"):
            why = "I can't post in a direct message between other people."
        elif reason == "is_archived":
            why = "this channel is archived."
        else:
            why = ("I'm not a member of this channel. Invite me with `/invite @Playbot` "
                   "to get job messages here.")
        text = f":information_source: {why} Job updates go to {where} instead."
        try:
            self.ephemeral(text)
        except SlackApiError as exc:
            log.warning("could not tell %s about the redirect: %s", self.caller.slack_user_id,
                        slack_error(exc))
