"""Fixtures for the worker tests: a world of users, servers, playbooks and jobs in a real
database, a private playbook directory, a worker configuration, and a fake Slack.

Rows are created directly through the models (the job-creation API belongs to the Slack
side); playbooks are registered with the SHA-256 of their file like `playbooks sync` does.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.fake_slack import FakeSlack
from core.playbook_files import playbook_sha256
from db.models import Environment, Job, JobLog, JobStatus, Playbook, Role, Server, Ticket, User
from db.session import make_engine, make_session_factory
from workers.config import WorkerConfig, configure
from workers.middleware import dispose_engines

PLAYBOOKS = Path(__file__).parent / "playbooks"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class World:
    """Rows for one test, in the database at `url`."""

    url: str
    factory: sessionmaker[Session]
    playbook_dir: Path
    slack: FakeSlack | None = None
    _users: dict[str, int] = field(default_factory=dict)

    def user(self, name: str = "alice", *, slack_id: str | None = "U_ALICE",
             role: Role = Role.operator) -> int:
        if name not in self._users:
            with self.factory.begin() as s:
                user = User(username=name, role=role, slack_user_id=slack_id,
                            email=f"{name}@example.com")
                s.add(user)
                s.flush()
                self._users[name] = user.id
        return self._users[name]

    def server(self, hostname: str = "local", *, environment: Environment = Environment.development,
               connection: str = "local", **columns: Any) -> int:
        with self.factory.begin() as s:
            existing = s.scalar(select(Server).where(Server.hostname == hostname))
            if existing is not None:
                return existing.id
            server = Server(hostname=hostname, environment=environment, connection=connection,
                            tags=columns.pop("tags", ["test"]), **columns)
            s.add(server)
            s.flush()
            return server.id

    def playbook(self, name: str, *, variables: dict[str, Any] | None = None,
                 timeout_seconds: int | None = None) -> int:
        path = self.playbook_dir / f"{name}.yml"
        with self.factory.begin() as s:
            existing = s.scalar(select(Playbook).where(Playbook.name == name))
            if existing is not None:
                return existing.id
            playbook = Playbook(name=name, file_path=f"{name}.yml", file_hash=playbook_sha256(self.playbook_dir, path.name),
                                variables=variables or {}, timeout_seconds=timeout_seconds,
                                allow_free_vars=True)
            s.add(playbook)
            s.flush()
            return playbook.id

    def job(self, playbook: str = "ok", *, server: str = "local",
            extra_vars: dict[str, Any] | None = None, check_mode: bool = False,
            variables: dict[str, Any] | None = None, status: JobStatus = JobStatus.pending,
            slack_message: bool = True, channel: str = "C_OPS") -> str:
        """A job row; with `slack_message` its channel message is posted like the app does."""
        playbook_id = self.playbook(playbook, variables=variables)
        server_id = self.server(server)
        user_id = self.user()
        with self.factory.begin() as s:
            job = Job(playbook_id=playbook_id, server_id=server_id, user_id=user_id,
                      status=status, extra_vars=extra_vars or {}, check_mode=check_mode,
                      slack_channel_id=channel if self.slack else None)
            s.add(job)
            s.flush()
            job_id = job.job_id
        if slack_message and self.slack is not None:
            from slack_sdk import WebClient

            client = WebClient(token="xoxb-test", base_url=self.slack.api_url)
            ts = client.chat_postMessage(channel=channel, text="launching")["ts"]
            with self.factory.begin() as s:
                s.get(Job, self.job_pk(job_id)).slack_message_ts = ts
        return job_id

    def job_pk(self, job_id: str) -> int:
        with self.factory() as s:
            return s.scalar(select(Job.id).where(Job.job_id == job_id))

    def get(self, job_id: str) -> Job:
        with self.factory() as s:
            return s.execute(select(Job).where(Job.job_id == job_id)).unique().scalar_one()

    def logs(self, job_id: str) -> list[JobLog]:
        with self.factory() as s:
            return list(s.scalars(select(JobLog).where(JobLog.job_id == self.job_pk(job_id))
                                  .order_by(JobLog.line_number)))

    def tickets(self, job_id: str) -> list[Ticket]:
        with self.factory() as s:
            return list(s.scalars(select(Ticket).where(Ticket.job_id == self.job_pk(job_id)))
                        .unique())

    def set(self, job_id: str, **values: Any) -> None:
        with self.factory.begin() as s:
            job = s.get(Job, self.job_pk(job_id))
            for key, value in values.items():
                setattr(job, key, value)


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    target = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, target)
    return target


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _world(url: str, playbook_dir: Path, slack: FakeSlack | None) -> Iterator[World]:
    engine = make_engine(url)
    yield World(url=url, factory=make_session_factory(engine), playbook_dir=playbook_dir,
                slack=slack)
    engine.dispose()
    dispose_engines()


@pytest.fixture
def world(db_url: str, playbook_dir: Path) -> Iterator[World]:
    """On SQLite and on MariaDB, no Slack."""
    yield from _world(db_url, playbook_dir, None)


@pytest.fixture
def maria_world(mariadb_url: str, playbook_dir: Path, fake_slack: FakeSlack) -> Iterator[World]:
    """On MariaDB, with a fake Slack."""
    yield from _world(mariadb_url, playbook_dir, fake_slack)


@pytest.fixture
def sqlite_world(sqlite_url: str, playbook_dir: Path, fake_slack: FakeSlack) -> Iterator[World]:
    """On SQLite, with a fake Slack."""
    yield from _world(sqlite_url, playbook_dir, fake_slack)


def worker_config(world: World, tmp_path: Path, **overrides: Any) -> WorkerConfig:
    """A configuration for tests: fast heartbeats and polls, private directories."""
    values: dict[str, Any] = dict(
        database_url=world.url,
        slack_token="xoxb-test" if world.slack else None,
        slack_api_url=world.slack.api_url if world.slack else "https://slack.com/api/",
        jobs_channel="C_JOBS",
        playbook_dir=world.playbook_dir,
        runtime_dir=tmp_path / "runs",
        archive_dir=tmp_path / "archive",
        heartbeat_interval=1.0,
        reaper_grace=3.0,
        server_wait_delay=0.5,
        cancel_poll_interval=0.3,
        housekeeping_interval=0.5,
        shutdown_grace=5.0,
    )
    values.update(overrides)
    return WorkerConfig(**values)


@pytest.fixture
def config_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(world: World, **overrides: Any) -> WorkerConfig:
        return configure(worker_config(world, tmp_path, **overrides))

    return make
