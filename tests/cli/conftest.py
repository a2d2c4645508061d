"""Fixtures for the operator CLI tests: the real `playbot` command run in-process against a
migrated database (SQLite and MariaDB through `db_url`) and a private playbook directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from db.models import AuditLog
from db.session import make_engine
from tests.support.cli import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Playbot:
    """`playbot` as an operator runs it, plus a look into the database it writes to."""

    url: str
    playbook_dir: Path
    engine: Engine

    def __call__(self, *args: str) -> Result:
        return run_cli(*args, env={"DATABASE_URL": self.url,
                                   "PLAYBOOK_DIR": str(self.playbook_dir),
                                   "LOG_LEVEL": "WARNING"})

    def query(self, work: Callable[[Session], Any]) -> Any:
        with Session(self.engine) as session:
            return work(session)

    def count(self, model: type) -> int:
        return self.query(lambda s: s.scalar(select(func.count()).select_from(model)))

    def audits(self, action: str | None = None) -> list[AuditLog]:
        query = select(AuditLog).order_by(AuditLog.id)
        if action:
            query = query.where(AuditLog.action == action)
        return self.query(lambda s: list(s.scalars(query)))


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    """A copy of the shipped example playbooks, free to be edited by the test."""
    target = tmp_path / "playbooks"
    shutil.copytree(EXAMPLES / "playbooks", target)
    return target


@pytest.fixture
def playbot(db_url: str, playbook_dir: Path) -> Iterator[Playbot]:
    engine = make_engine(db_url)
    yield Playbot(db_url, playbook_dir, engine)
    engine.dispose()
