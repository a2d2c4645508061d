"""workers.config: the worker's configuration comes from the app's settings, duck-typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import load_settings
from workers.config import MAX_JOB_TIMEOUT_SECONDS, WorkerConfig, configure, current


def test_the_config_is_built_from_the_settings_names():
    settings = load_settings(database_url="sqlite:///x.db", redis_url="redis://r:6379/0",
                             slack_bot_token="xoxb-1", playbot_jobs_channel="C_JOBS",
                             playbot_job_timeout_seconds=900, playbook_dir=Path("/pb"))

    config = WorkerConfig.from_settings(settings)

    assert config.redis_url == "redis://r:6379/0" and config.slack_token == "xoxb-1"
    assert config.jobs_channel == "C_JOBS" and config.playbook_dir == Path("/pb")
    assert config.job_timeout == 900


def test_unknown_overrides_are_refused():
    settings = load_settings(database_url="sqlite:///x.db")

    with pytest.raises(TypeError, match="threads"):
        WorkerConfig.from_settings(settings, threads=3)


def test_a_playbook_limit_overrides_the_default_but_never_the_cap():
    config = WorkerConfig(database_url="sqlite://", job_timeout=600)

    assert config.timeout_for(None) == 600
    assert config.timeout_for(120) == 120
    assert config.timeout_for(10**9) == MAX_JOB_TIMEOUT_SECONDS


def test_current_returns_the_configured_instance():
    config = configure(WorkerConfig(database_url="sqlite://"))

    assert current() is config
