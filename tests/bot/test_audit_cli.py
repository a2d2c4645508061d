"""`playbot audit verify` and `playbot audit export`, run as an operator runs them, on SQLite
and MariaDB databases built by the migrations."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from core import audit
from core.audit import RequestInfo
from db.session import make_engine, make_session_factory
from tests.support.cli import run_cli


@pytest.fixture
def trail(db_url):
    """Three committed audit rows (the second with Slack ids); (url, rows)."""
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        rows = [audit.record(session, user=None, action=f"job.step{i}", resource_type="job",
                             resource_id=str(i), request=RequestInfo(
                                 team_id="T1", channel_id="C1", request_id="req-1")
                             if i == 1 else None)
                for i in range(3)]
        session.commit()
    engine.dispose()
    return db_url, rows


def test_verify_passes_on_an_intact_trail_and_prints_the_head(trail):
    url, rows = trail

    result = run_cli("audit", "verify", env={"DATABASE_URL": url})

    assert result.exit_code == 0, result.output
    assert f"3 rows, head {rows[-1].row_hash}" in result.stdout


def test_verify_exits_1_naming_the_first_row_a_superuser_changed(trail):
    # given a trail whose second row the superuser rewrote with the triggers dropped
    url, rows = trail
    engine = make_engine(url)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            saved = connection.execute(text(
                "SELECT sql FROM sqlite_master WHERE name = 'audit_logs_no_update'")).scalar_one()
        else:
            saved = connection.execute(text("SHOW CREATE TRIGGER audit_logs_no_update")).one()[2]
        connection.execute(text("DROP TRIGGER audit_logs_no_update"))
        connection.execute(text("UPDATE audit_logs SET resource_id = '99' WHERE id = :pk"),
                           {"pk": rows[1].id})
        connection.exec_driver_sql(saved)
    engine.dispose()

    # when the operator verifies
    result = run_cli("audit", "verify", env={"DATABASE_URL": url})

    # then it fails and names the row
    assert result.exit_code == 1
    assert f"BROKEN at row {rows[1].id}" in result.stderr and "was changed" in result.stderr


def test_export_writes_json_lines_of_the_window(trail, tmp_path):
    url, rows = trail
    day = rows[0].timestamp.date().isoformat()
    out = tmp_path / "audit.jsonl"

    result = run_cli("audit", "export", "--since", day, "--until", day, "--output", str(out),
                     env={"DATABASE_URL": url})

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["job.step0", "job.step1", "job.step2"]
    assert lines[1]["team_id"] == "T1" and lines[1]["request_id"] == "req-1"
    assert lines[2]["row_hash"] == rows[2].row_hash
    assert "exported 3 audit rows" in result.stderr


def test_export_to_stdout_leaves_out_rows_before_since(trail):
    url, rows = trail
    later = (rows[-1].timestamp + timedelta(seconds=1)).isoformat()

    result = run_cli("audit", "export", "--since", later, env={"DATABASE_URL": url})

    assert result.exit_code == 0 and result.stdout == ""


@pytest.mark.parametrize("args", [["--since", "yesterday"],
                                  ["--since", "2026-12-02", "--until", "2026-12-01"]],
                         ids=["not-a-date", "until-before-since"])
def test_export_refuses_bad_dates_with_exit_2(tmp_path, args):
    url = f"sqlite:///{tmp_path}/unused.db"

    result = run_cli("audit", "export", *args, env={"DATABASE_URL": url})

    assert result.exit_code == 2 and "error:" in result.stderr
