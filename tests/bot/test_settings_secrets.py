"""Settings never show secrets when printed or logged."""

from bot.settings import load_settings


def test_printing_settings_hides_tokens_and_url_passwords():
    settings = load_settings(
        slack_bot_token="xoxb-top-secret",
        slack_signing_secret="signing-top-secret",
        slack_app_token="xapp-top-secret",
        database_url="mysql+pymysql://playbot:db-top-secret@db/playbot",
        redis_url="redis://:redis-top-secret@cache:6379/0",
    )

    shown = repr(settings) + str(settings)

    assert "top-secret" not in shown
    assert "mysql+pymysql://playbot:***@db/playbot" in shown
    assert settings.database_url.endswith(":db-top-secret@db/playbot")
