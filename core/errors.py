"""Domain errors: each carries a message written for the person who caused it."""

from __future__ import annotations


class PlaybotError(Exception):
    """Base of every error a user may be shown. `str(error)` is the user-facing message."""

    def __init__(self, message: str, *, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestions = suggestions or []

    def __str__(self) -> str:
        if not self.suggestions:
            return self.message
        return f"{self.message} Did you mean: {', '.join(self.suggestions)}?"


class NotAllowed(PlaybotError):
    """The user's role does not permit the action."""


class InactiveUser(NotAllowed):
    """The user exists but is deactivated."""


class ForeignWorkspace(NotAllowed):
    """The request comes from outside the Slack install (another workspace or organisation,
    a Slack Connect user): refused, and never provisioned."""


class UnknownUser(PlaybotError):
    """No such user, and provisioning is off or impossible."""


class NotFound(PlaybotError):
    """A named thing (job, ticket, server, playbook...) does not exist."""


class UnknownPlaybook(NotFound):
    pass


class UnknownTemplate(NotFound):
    """No job template of that name (core.templates)."""


class UnknownServer(NotFound):
    pass


class UnknownJob(NotFound):
    pass


class UnknownTicket(NotFound):
    pass


class InvalidVars(PlaybotError):
    """Extra vars are malformed, undeclared, forbidden, secret-looking or of the wrong type."""


class InvalidInput(PlaybotError):
    """Any other malformed user input (a bad argument, an empty note...)."""


class InvalidState(PlaybotError):
    """The thing exists but is not in a state that allows the action (job already finished...)."""


class PlaybookChanged(PlaybotError):
    """The playbook file on disk no longer matches its registered SHA-256, or left the playbook dir."""


class QueueUnavailable(PlaybotError):
    """The job queue could not take the message (Redis down); the job stays pending and is requeued."""
