"""manifest.yml and the code agree, both ways: commands, their help, events, interactivity,
and a bot scope for every Slack Web API method the code calls (and no scope nobody needs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from slack_sdk import WebClient

from slackui import ids
from slackui.help import BY_COMMAND

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())
SOURCE_DIRS = ("bot", "handlers", "workers", "slackui", "core")

# Bot scopes each Web API method needs (https://api.slack.com/methods). A method the code
# calls that is missing here fails the test: look its scope up and add both.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "chat.postMessage": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.delete": {"chat:write"},
    "chat.getPermalink": set(),
    "conversations.open": {"im:write"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "views.publish": set(),
    "files.upload_v2": {"files:write"},  # slack_sdk helper: getUploadURLExternal + complete
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
    "users.info": {"users:read"},
    "reactions.add": {"reactions:write"},
}
# Scopes not tied to one method call.
STANDALONE_SCOPES = {
    "commands": "slash commands",
    "chat:write.public": "posting job messages in public channels without an invitation",
    "im:history": "message.im events: direct messages to the bot, answered with help",
}


def manifest_commands() -> dict[str, dict]:
    return {c["command"]: c for c in MANIFEST["features"]["slash_commands"]}


def called_api_methods() -> dict[str, list[str]]:
    """API methods called anywhere in the source, as {"chat.postMessage": [files...]}."""
    names = {n for n in dir(WebClient) if not n.startswith("_") and "_" in n}
    # `client.chat_update(...)`, and also a method passed along (`call(client.files_upload_v2,`)
    pattern = re.compile(r"\.(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    found: dict[str, list[str]] = {}
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "fake_slack.py":
                continue  # the fake implements the methods, it does not call them
            for match in pattern.finditer(path.read_text()):
                name = match.group(1)
                method = "files.upload_v2" if name == "files_upload_v2" else name.replace("_", ".")
                found.setdefault(method, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_command_in_the_code_is_in_the_manifest_and_back():
    assert set(manifest_commands()) == set(ids.ALL_COMMANDS)


@pytest.mark.parametrize("command", sorted(ids.ALL_COMMANDS))
def test_each_command_has_the_description_and_usage_hint_of_the_help(command):
    entry = manifest_commands()[command]
    assert entry["description"] == BY_COMMAND[command].description
    assert entry["usage_hint"] == BY_COMMAND[command].usage_hint
    assert len(entry["description"]) <= 2000 and len(entry["usage_hint"]) <= 1000


def test_commands_interactivity_and_events_all_go_to_the_one_events_url():
    urls = {c["url"] for c in manifest_commands().values()}
    settings = MANIFEST["settings"]
    urls.add(settings["interactivity"]["request_url"])
    urls.add(settings["event_subscriptions"]["request_url"])
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert settings["interactivity"]["is_enabled"] is True


def test_subscribed_events_are_exactly_the_ones_the_app_handles():
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    assert events == set(ids.ALL_EVENTS)


def test_app_home_tab_is_enabled_and_socket_mode_off_by_default():
    app_home = MANIFEST["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True  # DMs are the fallback for job messages
    assert MANIFEST["settings"]["socket_mode_enabled"] is False


def test_commands_that_take_a_user_have_mentions_escaped_to_ids():
    commands = manifest_commands()
    assert commands[ids.CMD_JOBS]["should_escape"] is True
    assert commands[ids.CMD_PLAYBOT]["should_escape"] is True
    # key=value text is passed on verbatim, not HTML-escaped
    assert commands[ids.CMD_RUN_PLAYBOOK]["should_escape"] is False


def test_every_web_api_method_the_code_calls_has_its_scope():
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    called = called_api_methods()
    assert "chat.postMessage" in called  # the scan itself works
    unknown = sorted(set(called) - set(METHOD_SCOPES))
    assert not unknown, f"add these methods and their scopes to METHOD_SCOPES: {unknown}"
    missing = {m: METHOD_SCOPES[m] - scopes for m in called if METHOD_SCOPES[m] - scopes}
    assert not missing, f"manifest.yml lacks scopes for {missing} (called in {called})"


def test_every_scope_in_the_manifest_is_needed():
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    needed = set(STANDALONE_SCOPES)
    for method in called_api_methods():
        needed |= METHOD_SCOPES.get(method, set())
    assert scopes - needed == set(), "scopes nothing uses (least privilege)"
