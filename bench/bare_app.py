"""The floor for the ack benchmark: a Bolt app whose command listeners only ack."""

from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

ACKED_COMMANDS = ("/run-playbook", "/jobs")


def create_bare_app(*, signing_secret: str, client: WebClient,
                    process_before_response: bool) -> App:
    """A Bolt app with the same signing secret and ack mode as the product; it only acks."""
    app = App(signing_secret=signing_secret, client=client, token_verification_enabled=False,
              process_before_response=process_before_response)

    def only_ack(ack: Ack) -> None:
        ack()

    for command in ACKED_COMMANDS:
        app.command(command)(only_ack)
    return app
