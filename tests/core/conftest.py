"""Fixtures for the domain core's tests: a small world of users, servers and playbooks.

`world` builds, in the test's own database (both engines through `session`), the people and
things the product talks about: admins alice and dave, operators oscar and olga, viewer
vera, deactivated ivan; servers web-01 (development), web-02 (staging), prod-01 and
prod-02 (production), old-01 (deactivated); playbooks ping, deploy (declared variables) and
free (free variables), registered with the SHA-256 of real files in a playbook directory.

After every test that uses `world`, no job that has left the active statuses (or was asked
to stop) may still hold `jobs.active_fingerprint`: each lifecycle path the core tests take
is thereby checked to release it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.jobs import LaunchPolicy
from core.playbook_files import playbook_sha256
from db.models import ACTIVE_JOB_STATUSES, Environment, Job, Playbook, Role, Server, User

PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""

DEPLOY_VARIABLES = {
    "version": {"type": "string", "required": True, "pattern": "^[0-9][0-9.]*$",
                "description": "Release to deploy"},
    "env_name": {"type": "choice", "choices": ["blue", "green"], "default": "blue"},
    "replicas": {"type": "integer", "min": 1, "max": 20, "default": 2},
    "dry_run": {"type": "boolean", "default": False},
    "ratio": {"type": "number", "min": 0, "max": 1},
    "regions": {"type": "list"},
    "note": {"type": "string"},
    "db_password": {"type": "string", "secret": True},
}


@dataclass
class World:
    session: Session
    playbook_dir: Path
    users: dict[str, User]
    servers: dict[str, Server]
    playbooks: dict[str, Playbook]

    def user(self, name: str) -> User:
        return self.users[name]


def _register(session: Session, playbook_dir: Path, name: str, **columns: object) -> Playbook:
    path = playbook_dir / f"{name}.yml"
    path.write_text(PLAY)
    book = Playbook(name=name, file_path=path.name,
                    file_hash=hashlib.sha256(path.read_bytes()).hexdigest(), **columns)
    session.add(book)
    return book


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    return directory


def stale_fingerprints(session: Session) -> list[tuple[str, str, bool]]:
    """Jobs holding a launch fingerprint although they are finished or asked to stop:
    (uuid, status, cancel_requested) of each. Should always be empty."""
    rows = session.execute(
        select(Job.job_id, Job.status, Job.cancel_requested)
        .where(Job.active_fingerprint.is_not(None),
               or_(Job.status.not_in(ACTIVE_JOB_STATUSES), Job.cancel_requested.is_(True)))
    ).all()
    return [(job_id, status.value, cancel) for job_id, status, cancel in rows]


@pytest.fixture
def world(session: Session, session_factory: sessionmaker[Session],
          playbook_dir: Path) -> Iterator[World]:
    users = {
        "alice": User(username="alice", slack_user_id="U_ALICE", role=Role.admin),
        "dave": User(username="dave", slack_user_id="U_DAVE", role=Role.admin),
        "oscar": User(username="oscar", slack_user_id="U_OSCAR", role=Role.operator),
        "olga": User(username="olga", slack_user_id="U_OLGA", role=Role.operator),
        "vera": User(username="vera", slack_user_id="U_VERA", role=Role.viewer),
        "ivan": User(username="ivan", slack_user_id="U_IVAN", role=Role.operator,
                     is_active=False),
    }
    servers = {
        "web-01": Server(hostname="web-01", environment=Environment.development,
                         tags=["web", "eu"]),
        "web-02": Server(hostname="web-02", environment=Environment.staging, tags=["web"]),
        "prod-01": Server(hostname="prod-01", environment=Environment.production,
                          tags=["web", "db"]),
        "prod-02": Server(hostname="prod-02", environment=Environment.production, tags=["db"]),
        "old-01": Server(hostname="old-01", environment=Environment.development,
                         tags=["legacy"], is_active=False),
    }
    session.add_all([*users.values(), *servers.values()])
    playbooks = {
        "ping": _register(session, playbook_dir, "ping"),
        "deploy": _register(session, playbook_dir, "deploy", variables=DEPLOY_VARIABLES),
        "free": _register(session, playbook_dir, "free", allow_free_vars=True,
                          variables={"level": {"type": "integer", "default": 1}}),
        "retired": _register(session, playbook_dir, "retired", is_active=False),
    }
    for book in playbooks.values():  # the registered hash covers the whole directory tree
        book.file_hash = playbook_sha256(playbook_dir, book.file_path)
    session.commit()
    yield World(session, playbook_dir, users, servers, playbooks)
    with session_factory() as fresh:
        assert stale_fingerprints(fresh) == [], "a lifecycle path kept the launch fingerprint"


@pytest.fixture
def policy(playbook_dir: Path) -> LaunchPolicy:
    return LaunchPolicy(playbook_dir=playbook_dir, admins_self_approve=False,
                        approval_ttl=timedelta(minutes=60), max_targets=10)
