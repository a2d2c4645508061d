"""Fixtures for the Slack app tests: the real app over HTTP, FakeSlack, seeded users/servers/
playbooks (real files with their SHA-256 in a temporary PLAYBOOK_DIR).

`slack` runs on SQLite; a test that should also run on MariaDB parametrizes it:
`@pytest.mark.parametrize("slack", ["sqlite", "mariadb"], indirect=True)`.

tests/handlers/conftest.py makes these fixtures available there; other test folders (the
web process tests in tests/bot) use them with `from tests.handlers.fixtures import *`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from bot.fake_slack import FakeSlack
from bot.settings import Settings
from core.playbook_files import playbook_sha256
from db.models import Environment, Playbook, Role, Server, User
from db.session import transaction
from tests.conftest import migrate
from tests.handlers.harness import BOT_TOKEN, SIGNING_SECRET, SlackHarness, start_harness

USERS = {
    # slack id: (username, role, active)
    "U_ALICE": ("alice", Role.operator, True),
    "U_OSCAR": ("oscar", Role.operator, True),
    "U_BOB": ("bob", Role.admin, True),
    "U_CAROL": ("carol", Role.admin, True),
    "U_VIC": ("victor", Role.viewer, True),
    "U_OLGA": ("olga", Role.operator, False),
}
OPERATOR, OTHER_OPERATOR, ADMIN, OTHER_ADMIN, VIEWER, INACTIVE = USERS

PING_YML = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
"""
DEPLOY_YML = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: show the release
      ansible.builtin.debug:
        msg: "deploying {{ version }} to {{ env_name }} x{{ replicas }}"
"""
DEPLOY_VARS = {
    "version": {"type": "string", "required": True, "pattern": "^[0-9][0-9.]*$",
                "description": "Release to deploy"},
    "env_name": {"type": "choice", "choices": ["blue", "green"], "default": "blue"},
    "replicas": {"type": "integer", "min": 1, "max": 20, "default": 2},
    "dry_run": {"type": "boolean", "default": False},
    "db_password": {"type": "string", "secret": True},
}


__all__ = [
    "ADMIN", "INACTIVE", "OPERATOR", "OTHER_ADMIN", "OTHER_OPERATOR", "VIEWER",
    "_fake_slack_server", "_migrated_sqlite_template", "app_settings", "app_sqlite_url",
    "fake_slack", "playbook_dir", "seed", "slack", "slack_settings",
]


def write_playbook(directory: Path, name: str, text: str) -> tuple[str, str]:
    path = directory / f"{name}.yml"
    path.write_text(text)
    return path.name, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    return directory


def seed(factory: sessionmaker[Session], playbook_dir: Path) -> None:
    """The people, servers and playbooks every Slack app test starts with."""
    with transaction(factory) as session:
        for slack_id, (name, role, active) in USERS.items():
            session.add(User(username=name, slack_user_id=slack_id, role=role,
                             is_active=active, email=f"{name}@example.com"))
        session.add_all([
            Server(hostname="local", environment=Environment.development,
                   tags=["local", "web"], connection="local", ip_address="127.0.0.1"),
            Server(hostname="stage-01", environment=Environment.staging, tags=["web"],
                   connection="local"),
            Server(hostname="prod-local", environment=Environment.production,
                   tags=["prod"], connection="local"),
        ])
        books = (
            ("ping", PING_YML, {"description": "Check the hosts answer", "tags": ["check"]}),
            ("deploy", DEPLOY_YML, {"description": "Deploy the web app", "tags": ["web"],
                                    "variables": DEPLOY_VARS}),
        )
        for name, text, extra in books:
            write_playbook(playbook_dir, name, text)
            (playbook_dir / f"{name}.playbot.yml").write_text(yaml.safe_dump(extra))
        # the registered hash covers the whole directory tree, as `playbooks sync` does
        for name, _, extra in books:
            session.add(Playbook(name=name, file_path=f"{name}.yml",
                                 file_hash=playbook_sha256(playbook_dir, f"{name}.yml"),
                                 description=extra.get("description"),
                                 tags=extra.get("tags", []),
                                 variables=extra.get("variables", {})))


@pytest.fixture(scope="session")
def _fake_slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_slack(_fake_slack_server: FakeSlack) -> Iterator[FakeSlack]:
    """FakeSlack, emptied for this test (one server for the session: stopping one is slow)."""
    _fake_slack_server.reset()
    _fake_slack_server.users.clear()
    yield _fake_slack_server
    _fake_slack_server.reset()


def app_settings(database_url: str, fake: FakeSlack, playbook_dir: Path, **overrides: object
                 ) -> Settings:
    values: dict[str, object] = dict(
        database_url=database_url, redis_url=None, slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET, slack_app_token=None,
        slack_api_url=fake.api_url, playbook_dir=playbook_dir, playbot_jobs_channel=None,
        playbot_auto_provision=True, playbot_admins_self_approve=False,
        playbot_approval_ttl_minutes=60, playbot_max_targets=50,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def slack_settings() -> dict[str, object]:
    """Setting overrides for the `slack` fixture; a test may fill it before using `slack`."""
    return {}


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database migrated to head; tests get copies (migrating each costs ~0.4 s)."""
    path = tmp_path_factory.mktemp("template") / "playbot.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def app_sqlite_url(_migrated_sqlite_template: Path, tmp_path: Path) -> str:
    """A freshly migrated SQLite database of this test's own."""
    path = tmp_path / "playbot.db"
    shutil.copyfile(_migrated_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def slack(request: pytest.FixtureRequest, fake_slack: FakeSlack, playbook_dir: Path,
          slack_settings: dict[str, object]) -> Iterator[SlackHarness]:
    """The Playbot app on loopback against FakeSlack, with seeded data (SQLite by default)."""
    backend = getattr(request, "param", "sqlite")
    url = request.getfixturevalue("app_sqlite_url" if backend == "sqlite" else "mariadb_url")
    settings = app_settings(url, fake_slack, playbook_dir, **slack_settings)
    harness = start_harness(settings, fake_slack)
    seed(harness.session_factory, playbook_dir)
    yield harness
    harness.close()
