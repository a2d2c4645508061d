"""The Slack app fixtures (tests/handlers/fixtures.py) for the handler tests."""

from tests.handlers.fixtures import *  # noqa: F403 - fixtures and the seeded users' ids
