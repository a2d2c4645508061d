"""Fixtures of the fleet tests: the workers' test world (tests/workers/conftest.py)."""

from tests.workers.conftest import (  # noqa: F401  (pytest fixtures, used by name)
    config_for,
    fake_slack,
    maria_world,
    playbook_dir,
    sqlite_world,
    world,
)
