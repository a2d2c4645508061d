"""API tokens: made by `playbot tokens add` (shown once, stored as a hash), acting with their
user's role, refused once revoked, expired or their user deactivated; listed and revoked
from the CLI and from Slack; every refusal audited, guessing rate limited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core import api_tokens
from db.base import utcnow
from db.models import ApiToken, AuditLog, User
from db.session import transaction
from tests.handlers.fixtures import OPERATOR
from tests.support.cli import run_cli

BOTH = pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)


def cli(api, *args: str):
    return run_cli("tokens", *args, env={"DATABASE_URL": api.harness.runtime.settings.database_url,
                                         "LOG_LEVEL": "WARNING"})


@BOTH
def test_a_token_made_by_the_cli_is_shown_once_works_and_is_stored_only_as_a_hash(api):
    made = cli(api, "add", "alice", "--name", "ci-deploy", "--expires", "30d")

    assert made.exit_code == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("pbt_") and len(secret) > 40
    assert "shown only this once" in made.stderr
    me = api.get("/api/me", token=secret)
    assert me.status == 200 and me.body == {"username": "alice", "role": "operator",
                                            "slack_user_id": "U_ALICE"}
    with api.harness.session_factory() as session:
        [row] = session.scalars(select(ApiToken)).all()
        audit_text = str([r.details for r in session.scalars(select(AuditLog))])
    assert row.token_hash == api_tokens.hash_token(secret) and secret not in row.token_hash
    assert row.name == "ci-deploy" and row.expires_at is not None
    assert secret not in audit_text  # neither the audit nor anything else keeps it
    listing = cli(api, "list", "alice")
    assert "ci-deploy" in listing.stdout and secret not in listing.stdout
    assert row.prefix in listing.stdout


def test_cli_refuses_bad_input_with_exit_2_and_writes_nothing(api):
    for args, words in ((("add", "nobody"), "nobody"),
                        (("add", "alice", "--expires", "soonish"), "not an expiry"),
                        (("add", "alice", "--expires", "2001-01-01"), "in the past"),
                        (("add", "alice", "--name", "bad name!"), "not a token name"),
                        (("revoke", "alice", "nothing"), "no token `nothing`")):
        result = cli(api, *args)
        assert result.exit_code == 2, args
        assert words in result.stderr, (args, result.stderr)
    with api.harness.session_factory() as session:
        assert session.scalars(select(ApiToken)).all() == []


@BOTH
def test_a_revoked_token_stops_at_once_with_a_401(api):
    secret = api.token("alice", name="laptop")

    revoked = cli(api, "revoke", "alice", "laptop")
    answer = api.get("/api/me", token=secret)

    assert revoked.exit_code == 0 and "Revoked laptop" in revoked.stdout
    assert answer.status == 401 and "unknown, revoked or expired" in answer.detail
    assert answer.headers["Www-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(api):
    secret = api.token("alice")
    with transaction(api.harness.session_factory) as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))

    assert api.get("/api/me", token=secret).status == 401


@BOTH
def test_a_deactivated_users_tokens_stop_working(api):
    secret = api.token("alice")
    with transaction(api.harness.session_factory) as session:
        session.execute(update(User).where(User.username == "alice").values(is_active=False))

    answer = api.get("/api/jobs", token=secret)

    assert answer.status == 403 and "deactivated" in answer.detail


def test_a_token_acts_with_its_users_role_as_it_is_now(api):
    secret = api.token("victor")
    assert api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                    token=secret).status == 403
    with transaction(api.harness.session_factory) as session:
        session.execute(update(User).where(User.username == "victor").values(role="operator"))

    assert api.post("/api/jobs", {"playbook": "ping", "target": "local"},
                    token=secret).status == 202


@pytest.mark.parametrize("header", [None, "Bearer pbt_made-up", "Basic YWxpY2U6eA==",
                                    "Bearer"])
def test_missing_or_bad_credentials_are_401_and_audited_as_denied(api, header):
    answer = api.get("/api/jobs", headers={"Authorization": header} if header else {})

    assert answer.status == 401 and answer.body["code"] in ("Unauthorized", "UnknownToken")
    [row] = api.harness.audit("jobs.list")
    assert row.details["outcome"] == "denied" and row.user_id is None
    assert row.ip_address == "127.0.0.1"
    assert "made-up" not in str(row.details)


@pytest.mark.parametrize("slack_settings", [{"playbot_api_rate_limit": "3/minute"}])
def test_a_token_over_its_rate_limit_gets_429_with_retry_after(api):
    secret, other = api.token("alice"), api.token("oscar")

    answers = [api.get("/api/me", token=secret).status for _ in range(4)]
    limited = api.get("/api/me", token=secret)

    assert answers == [200, 200, 200, 429]
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "Too many requests" in limited.detail
    assert api.get("/api/me", token=other).status == 200  # per token


def test_guessing_tokens_is_rate_limited_per_address(api):
    statuses = [api.get("/api/me", token=f"pbt_guess{n}").status for n in range(32)]

    assert statuses[:30] == [401] * 30 and statuses[-1] == 429


def test_slack_users_list_and_revoke_their_own_tokens(api, slack):
    secret = api.token("alice", name="ci")

    listed = slack.command("/playbot", "tokens", user=OPERATOR)
    revoked = slack.command("/playbot", "tokens revoke ci", user=OPERATOR)
    again = slack.command("/playbot", "tokens revoke ci", user=OPERATOR)

    assert "`ci`" in listed.reply_text and secret not in listed.reply_text
    assert "Revoked your token `ci`" in revoked.reply_text
    assert "no token `ci`" in again.reply_text
    assert api.get("/api/me", token=secret).status == 401
    done, refused = slack.audit("token.revoke")
    assert done.details["name"] == "ci" and done.details["outcome"] == "allowed"
    assert refused.details["outcome"] == "denied"
