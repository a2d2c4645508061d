"""Charsets and collations (revision 0007): emoji are stored, and names are unique byte for
byte, the same on SQLite, on the suite's MariaDB and on a MariaDB with stock (latin1)
defaults; a latin1 database upgrades to utf8mb4 keeping its text."""

from __future__ import annotations

import itertools

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from db.models import Job, JobLog, Playbook, Server, User
from db.session import make_engine, make_session_factory
from migrations import alembic_config
from tests.support.servers import MariaDBServer

_names = itertools.count(1)
EMOJI_LINE = "ok: [web-01] => 🚀 deployed ✅ naïve café 日本語 𝄞"


@pytest.fixture
def stock_url(stock_mariadb_server: MariaDBServer) -> str:
    """A database on a MariaDB with latin1 defaults, migrated to head."""
    url = stock_mariadb_server.create_database(f"playbot_stock{next(_names)}")
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture(params=["sqlite", "mariadb", pytest.param("stock_mariadb", marks=pytest.mark.mariadb)])
def any_url(request) -> str:
    """A migrated database: SQLite, the suite's MariaDB, and a MariaDB with stock defaults."""
    name = {"sqlite": "sqlite_url", "mariadb": "mariadb_url",
            "stock_mariadb": "stock_url"}[request.param]
    return request.getfixturevalue(name)


def _job(session) -> Job:  # type: ignore[no-untyped-def]
    user = User(username="alice", role="operator")
    book = Playbook(name="deploy", file_path="deploy.yml", file_hash="0" * 64)
    server = Server(hostname="web-01", connection="local", host_vars={})
    session.add_all([user, book, server])
    session.flush()
    job = Job(playbook_id=book.id, server_id=server.id, user_id=user.id, extra_vars={})
    session.add(job)
    session.flush()
    return job


def test_emoji_in_job_output_and_errors_are_stored_and_read_back_unchanged(any_url):
    # given a job
    factory = make_session_factory(make_engine(any_url))
    with factory.begin() as s:
        job = _job(s)
        # when its output, error and vars hold emoji and other 4-byte characters
        s.add(JobLog(job_id=job.id, line_number=1, content=EMOJI_LINE))
        job.error_message = f"Task 'Deploy 🚀' failed on web-01: {EMOJI_LINE}"
        job.extra_vars = {"note": "🎉 release"}
        pk = job.id
    # then they come back exactly as written
    with factory() as s:
        assert s.scalars(select(JobLog.content).where(JobLog.job_id == pk)).one() == EMOJI_LINE
        back = s.get(Job, pk)
        assert back is not None
        assert back.error_message == f"Task 'Deploy 🚀' failed on web-01: {EMOJI_LINE}"
        assert back.extra_vars == {"note": "🎉 release"}


def test_names_are_unique_byte_for_byte_on_every_engine(any_url):
    # given a user alice and a playbook deploy
    factory = make_session_factory(make_engine(any_url))
    with factory.begin() as s:
        _job(s)
    # when names differing only in case (or accent) are added, they are different names
    with factory.begin() as s:
        s.add_all([User(username="Alice", role="viewer"), User(username="alicé", role="viewer"),
                   Playbook(name="Deploy", file_path="Deploy.yml", file_hash="1" * 64)])
    with factory() as s:
        assert sorted(s.scalars(select(User.username))) == ["Alice", "alice", "alicé"]
        # and an exact lookup finds only the exact name
        assert s.scalars(select(Playbook.file_path).where(Playbook.name == "DEPLOY")).all() == []
        assert s.scalars(select(Playbook.file_path).where(Playbook.name == "Deploy")).all() == [
            "Deploy.yml"]
    # while the very same name again is refused by the unique key
    with factory() as s, pytest.raises(IntegrityError):
        s.add(User(username="alice", role="viewer"))
        s.flush()


def test_a_latin1_database_upgrades_to_utf8mb4_keeping_its_text(stock_mariadb_server):
    # given a database at 0006 on a latin1 server, holding accented (latin1) text
    url = stock_mariadb_server.create_database(f"playbot_stock{next(_names)}")
    config = alembic_config(url)
    command.upgrade(config, "0006")
    engine = make_engine(url)
    with engine.begin() as c:  # SQL, not the models: they describe the head, not 0006
        c.execute(text(
            "INSERT INTO playbooks (name, description, file_path, file_hash, tags, variables, "
            "is_active, created_at, updated_at, allow_free_vars) VALUES ('deploy', :d, "
            "'deploy.yml', :h, '[]', '{}', 1, NOW(), NOW(), 0)"),
            {"d": "naïve café: déjà vu", "h": "0" * 64})
    with engine.connect() as c:
        before = c.execute(text(
            "SELECT table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = 'playbooks'")).scalar_one()
    assert before.startswith("latin1_")

    # when it is upgraded through 0007
    command.upgrade(config, "0007")

    # then the text is intact, TEXT stays TEXT, and emoji now fit
    with engine.begin() as c:
        assert c.execute(text("SELECT description FROM playbooks")).scalar_one() == (
            "naïve café: déjà vu")
        c.execute(text("UPDATE playbooks SET description = :d"), {"d": EMOJI_LINE})
        column = c.execute(text(
            "SELECT column_type, collation_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'playbooks' "
            "AND column_name = 'description'")).one()
    assert tuple(column) == ("text", "utf8mb4_bin")

    # and down again it stays utf8mb4 (nothing that cannot be stored is lost)
    command.downgrade(config, "0006")
    with engine.connect() as c:
        assert c.execute(text("SELECT description FROM playbooks")).scalar_one() == EMOJI_LINE
    engine.dispose()
