"""The API tests: the real web process (waitress, the real WSGI app) on loopback, FakeSlack,
seeded users, servers and playbooks, and tokens made as `playbot tokens add` makes them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from core import api_tokens
from db.models import User
from db.session import transaction
from tests.handlers.fixtures import *  # noqa: F403 - the Slack app fixtures
from tests.handlers.harness import SlackHarness


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", "")) if isinstance(self.body, dict) else ""


class Api:
    """Real HTTP requests to the app's /api/ with a token."""

    def __init__(self, harness: SlackHarness) -> None:
        self.harness = harness
        self.url = harness.server.url

    def token(self, username: str, **kwargs: Any) -> str:
        with transaction(self.harness.session_factory) as session:
            user = session.query(User).filter_by(username=username).one()
            return api_tokens.create(session, user, **kwargs).secret

    def request(self, method: str, path: str, *, token: str | None = None,
                body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        sent.setdefault("User-Agent", "playbot-tests/1.0")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                status, payload, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, payload, got = error.code, error.read(), error.headers
        text = payload.decode()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return Answer(status, parsed, dict(got))

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.request("POST", path, body=body if body is not None else {}, **kwargs)


@pytest.fixture
def api(slack: SlackHarness) -> Api:
    return Api(slack)
