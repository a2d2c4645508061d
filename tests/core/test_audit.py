"""The audit trail: one row per decision, with the request's origin, and never a secret."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core import audit
from core.audit import REDACTED, RequestInfo, sanitize
from core.errors import NotAllowed
from db.models import AuditLog, Role, User

SLACK_TOKEN = "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"
PRIVATE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
               "-----END OPENSSH PRIVATE KEY-----")


# sanitize ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["password", "db_password", "Passwd", "secret", "client_secret",
                                 "token", "slack-bot-token", "api_key", "apiKey",
                                 "private_key", "ssh_private_key", "credentials",
                                 "authorization", "auth", "aws_access_key", "passphrase"])
def test_values_under_secret_looking_keys_are_redacted(key):
    assert sanitize({key: "hunter2", "version": "1.2"}) == {key: REDACTED, "version": "1.2"}


def test_secret_keys_are_redacted_at_any_depth():
    details = {"vars": {"app": {"db_password": "x"}}, "items": [{"token": "y"}, "plain"]}
    assert sanitize(details) == {"vars": {"app": {"db_password": REDACTED}},
                                 "items": [{"token": REDACTED}, "plain"]}


def test_harmless_keys_that_merely_resemble_secret_ones_are_kept():
    details = {"author": "bob", "request_key": "cmd:T1", "playbook": "deploy", "keys": 3}
    assert sanitize(details) == details


@pytest.mark.parametrize("text", [
    f"token is {SLACK_TOKEN}",
    f"key:\n{PRIVATE_KEY}",
    "connect with password=hunter2 now",
    'payload {"api_key": "abc123def"}',
    "mysql+pymysql://playbot:s3cr3t@db/playbot",
    "Authorization: Bearer abcdefghijklmnop123",
    "random aZ3kLp9QwErT7yUiOp1AsDfGhJkL0zXcVbNm blob",
])
def test_secret_looking_values_are_redacted_inside_text(text):
    cleaned = sanitize({"message": text})["message"]
    assert REDACTED in cleaned
    for secret in (SLACK_TOKEN, "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE", "hunter2", "abc123def",
                   "s3cr3t", "abcdefghijklmnop123", "aZ3kLp9QwErT7yUiOp1AsDfGhJkL0zXcVbNm"):
        assert secret not in cleaned


def test_uuids_and_file_hashes_are_not_mistaken_for_secrets():
    details = {"job": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
               "file_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    assert sanitize(details) == details


def test_huge_values_are_truncated():
    details = {"output": "x" * 50_000, "hosts": [f"h{i}" for i in range(500)]}
    cleaned = sanitize(details)
    assert len(cleaned["output"]) < 1100 and "truncated" in cleaned["output"]
    assert len(cleaned["hosts"]) <= 51 and "truncated" in cleaned["hosts"][-1]


def test_odd_values_become_json():
    from datetime import UTC, datetime

    cleaned = sanitize({"when": datetime(2024, 5, 1, tzinfo=UTC), "role": Role.admin,
                        "tags": {"web"}, "blob": b"\x00\x01"})
    assert json.loads(json.dumps(cleaned)) == {"when": "2024-05-01T00:00:00+00:00",
                                               "role": "admin", "tags": ["web"],
                                               "blob": "[2 bytes]"}


# record --------------------------------------------------------------------------------


def test_a_recorded_action_says_who_what_where_and_the_outcome(session):
    # given
    user = User(username="alice", role=Role.admin)
    session.add(user)
    session.flush()
    # when
    audit.record(session, user=user, action="job.cancel", resource_type="job",
                 resource_id="abc", details={"reason": "oops", "password": "p"},
                 request=RequestInfo(ip_address="10.0.0.7", user_agent="Slackbot 1.0"))
    session.commit()
    # then
    row = session.scalars(select(AuditLog)).one()
    assert (row.user_id, row.action, row.resource_type, row.resource_id) == (
        user.id, "job.cancel", "job", "abc")
    assert row.details == {"reason": "oops", "password": REDACTED, "outcome": "allowed"}
    assert (row.ip_address, row.user_agent) == ("10.0.0.7", "Slackbot 1.0")


def test_a_denial_is_recorded_with_its_reason(session):
    audit.denied(session, None, "job.launch", "playbook", "deploy",
                 NotAllowed("You need the operator role"), RequestInfo())
    session.commit()
    row = session.scalars(select(AuditLog)).one()
    assert row.user_id is None
    assert row.details == {"error": "You need the operator role", "outcome": "denied"}


def test_an_unknown_outcome_is_a_programming_error(session):
    with pytest.raises(ValueError):
        audit.record(session, user=None, action="x", resource_type="y", resource_id=None,
                     outcome="maybe")  # type: ignore[arg-type]


def test_overlong_fields_are_cut_to_the_columns(session):
    audit.record(session, user=None, action="a" * 100, resource_type="r" * 50,
                 resource_id="i" * 100, request=RequestInfo("1" * 60, "u" * 400))
    session.commit()
    row = session.scalars(select(AuditLog)).one()
    assert (len(row.action), len(row.resource_type), len(row.resource_id)) == (64, 32, 64)
    assert (len(row.ip_address), len(row.user_agent)) == (45, 255)
