"""`playbot users`: people added, promoted and turned off from the shell, every change
audited, every mistake refused with exit code 2 and nothing written."""

from __future__ import annotations

import getpass

from db.models import AuditLog, Role, User


def test_adding_a_user_prints_it_stores_it_and_audits_who_did_it(playbot):
    result = playbot("users", "add", "alice", "--slack-id", "U0ALICE", "--role", "operator",
                     "--email", "alice@example.com")

    assert result.exit_code == 0, result.stderr
    assert "Added alice (operator, Slack U0ALICE)" in result.stdout
    [user] = playbot.query(lambda s: s.query(User).all())
    assert (user.username, user.role, user.email) == ("alice", Role.operator, "alice@example.com")
    [row] = playbot.audits("user.add")
    assert row.user_id is None
    assert row.details["via"] == "cli"
    assert row.details["os_user"] == getpass.getuser()


def test_a_bad_role_exits_2_with_the_closest_role_and_writes_nothing(playbot):
    result = playbot("users", "add", "alice", "--slack-id", "U0ALICE", "--role", "admn")

    assert result.exit_code == 2
    assert "Unknown role `admn`" in result.stderr and "admin" in result.stderr
    assert playbot.count(User) == 0
    assert playbot.audits("user.add") == []


def test_a_slack_id_that_is_taken_exits_2_naming_the_owner(playbot):
    playbot("users", "add", "alice", "--slack-id", "U0ALICE", "--role", "viewer")

    result = playbot("users", "add", "alice2", "--slack-id", "U0ALICE", "--role", "admin")

    assert result.exit_code == 2
    assert "already belongs to `alice`" in result.stderr
    assert "playbot users set-role alice admin" in result.stderr
    assert playbot.count(User) == 1


def test_a_missing_option_is_a_usage_error_with_exit_2(playbot):
    result = playbot("users", "add", "alice", "--role", "viewer")

    assert result.exit_code == 2
    assert "--slack-id" in result.stderr
    assert playbot.count(User) == 0


def test_set_role_deactivate_and_list_show_the_changes_and_audit_them(playbot):
    playbot("users", "add", "olga", "--slack-id", "U0OLGA", "--role", "viewer")

    promoted = playbot("users", "set-role", "olga", "operator")
    again = playbot("users", "set-role", "olga", "operator")
    off = playbot("users", "deactivate", "olga")
    listing = playbot("users", "list")

    assert (promoted.exit_code, again.exit_code, off.exit_code) == (0, 0, 0)
    assert "olga: viewer → operator" in promoted.stdout
    assert "already operator; nothing changed" in again.stdout
    assert "Deactivated olga" in off.stdout
    header, line = listing.stdout.strip().splitlines()
    assert header.split()[:2] == ["USERNAME", "ROLE"]
    assert line.split()[:5] == ["olga", "operator", "U0OLGA", "-", "no"]
    assert [a.action for a in playbot.audits()][-3:] == ["user.add", "user.set_role",
                                                         "user.deactivate"]


def test_an_unknown_user_exits_2_with_a_suggestion(playbot):
    playbot("users", "add", "oscar", "--slack-id", "U0OSCAR", "--role", "viewer")
    before = playbot.count(AuditLog)

    result = playbot("users", "set-role", "oskar", "admin")

    assert result.exit_code == 2
    assert "No user named `oskar`. Did you mean: oscar?" in result.stderr
    assert playbot.count(AuditLog) == before


def test_a_channel_id_or_a_too_short_id_is_refused_as_a_slack_member_id(playbot):
    channel = playbot("users", "add", "alice", "--slack-id", "C0123ABCD", "--role", "viewer")
    short = playbot("users", "add", "alice", "--slack-id", "U1", "--role", "viewer")

    assert channel.exit_code == 2 and short.exit_code == 2
    assert "looks like a channel id" in channel.stderr
    assert "Invalid Slack user id `U1`" in short.stderr and "U0123ABCD" in short.stderr
    assert playbot.count(User) == 0
