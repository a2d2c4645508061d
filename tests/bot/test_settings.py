"""Settings come from the environment and are validated at start: a bad value stops Playbot
with a message naming the variable, and nothing secret is echoed back."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings

DOCUMENTED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "PLAYBOOK_DIR",
    "PORT",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets: none of the developer's or CI's own settings leak in."""
    for name in [*DOCUMENTED, *(field.upper() for field in Settings.model_fields)]:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_defaults_need_no_servers(monkeypatch):
    # given an empty environment, when settings load
    settings = load_settings()

    # then Playbot runs embedded: a SQLite file, the in-process broker, port 3000
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url is None and not settings.uses_redis
    assert settings.port == 3000
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.playbook_dir == Path("examples/playbooks")


def test_values_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://app:pw@db.internal/playbot")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/0")
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("PLAYBOOK_DIR", "/srv/playbooks")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9999/api/")

    settings = load_settings()

    assert settings.database_url == "mysql+pymysql://app:pw@db.internal/playbot"
    assert settings.uses_redis and settings.redis_url == "redis://cache.internal:6379/0"
    assert settings.port == 8080
    assert settings.playbook_dir == Path("/srv/playbooks")
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"


def test_an_empty_redis_url_means_the_in_process_broker(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "")
    assert load_settings().redis_url is None


@pytest.mark.parametrize(
    ("name", "value", "explanation"),
    [
        ("PORT", "web", "valid integer"),
        ("PORT", "0", "greater than or equal to 1"),
        ("PORT", "70000", "less than or equal to 65535"),
        ("DATABASE_URL", "postgres://db.internal/playbot", "sqlite:// or mysql+pymysql://"),
        ("DATABASE_URL", "playbot.db", "sqlite:// or mysql+pymysql://"),
        ("REDIS_URL", "http://cache.internal:6379", "redis://"),
        ("REDIS_URL", "cache.internal:6379", "redis://"),
        ("LOG_LEVEL", "chatty", "DEBUG, INFO"),
        ("PLAYBOT_APPROVAL_TTL_MINUTES", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, name, value, explanation):
    # given one bad variable
    monkeypatch.setenv(name, value)

    # when settings load, then start-up stops with a line naming it and saying what is wrong
    with pytest.raises(SettingsError) as refused:
        load_settings()
    [line] = [line for line in str(refused.value).splitlines() if line.strip().startswith(name)]
    assert explanation in line


def test_every_bad_variable_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("PORT", "web")
    monkeypatch.setenv("REDIS_URL", "http://cache")
    monkeypatch.setenv("DATABASE_URL", "postgres://db")

    with pytest.raises(SettingsError) as refused:
        load_settings()

    message = str(refused.value)
    assert message.startswith("invalid configuration:")
    for name in ("PORT:", "REDIS_URL:", "DATABASE_URL:"):
        assert name in message


def test_the_error_does_not_echo_credentials(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://app:hunter2-secret@db.internal/playbot")
    monkeypatch.setenv("REDIS_URL", "http://:redis-secret@cache.internal")

    with pytest.raises(SettingsError) as refused:
        load_settings()

    assert "hunter2-secret" not in str(refused.value)
    assert "redis-secret" not in str(refused.value)


def test_a_run_lease_as_long_as_the_reaper_grace_is_refused(monkeypatch):
    # a stalled worker's playbook must be stopped before the reaper frees its servers
    monkeypatch.setenv("PLAYBOT_RUN_LEASE_SECONDS", "15")
    monkeypatch.setenv("PLAYBOT_REAPER_GRACE_SECONDS", "15")

    with pytest.raises(SettingsError) as error:
        load_settings()

    assert ("PLAYBOT_RUN_LEASE_SECONDS (15) must be shorter than "
            "PLAYBOT_REAPER_GRACE_SECONDS (15)") in str(error.value)


def test_a_run_lease_shorter_than_two_heartbeats_is_refused(monkeypatch):
    monkeypatch.setenv("PLAYBOT_HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("PLAYBOT_RUN_LEASE_SECONDS", "8")

    with pytest.raises(SettingsError, match="at least twice PLAYBOT_HEARTBEAT_SECONDS"):
        load_settings()


def test_by_default_a_stalled_run_is_fenced_before_its_job_is_reaped():
    settings = load_settings()

    assert settings.playbot_heartbeat_seconds * 2 <= settings.playbot_run_lease_seconds
    assert settings.playbot_run_lease_seconds < settings.playbot_reaper_grace_seconds <= 15
