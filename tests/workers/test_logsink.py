"""The log path: lines numbered from 1 without gaps, levels from events, secrets redacted,
batched inserts."""

from __future__ import annotations

import json
import shlex
import time

from sqlalchemy import event

from db.models import LogLevel
from workers.logsink import LogSink, Redactor, event_lines
from workers.middleware import engine_for


def _event(kind: str, stdout: str, **data: object) -> dict[str, object]:
    return {"event": kind, "stdout": stdout, "event_data": data,
            "created": "2026-01-02T03:04:05.678901+00:00"}


def test_every_stdout_line_becomes_one_row_numbered_from_one(world):
    job_id = world.job()
    sink = LogSink(engine_for(world.url), world.job_pk(job_id))

    sink.write_event(_event("playbook_on_task_start", "\r\nTASK [Greet] ****"))
    sink.write_event(_event("runner_on_start", ""))
    sink.write_event(_event("runner_on_ok", 'ok: [local] => {\r\n    "msg": "hi"\r\n}'))
    sink.close()

    rows = world.logs(job_id)
    assert [(r.line_number, r.content) for r in rows] == [
        (1, ""), (2, "TASK [Greet] ****"), (3, "ok: [local] => {"), (4, '    "msg": "hi"'),
        (5, "}")]
    assert rows[0].timestamp.isoformat().startswith("2026-01-02T03:04:05.678901")


def test_levels_come_from_the_event_and_from_warning_and_error_markers(world):
    job_id = world.job()
    sink = LogSink(engine_for(world.url), world.job_pk(job_id))

    sink.write_event(_event("runner_on_failed", "fatal: [web]: FAILED! => {}"))
    sink.write_event(_event("runner_on_failed", "fatal: [web]: FAILED!\r\n...ignoring",
                            ignore_errors=True))
    sink.write_event(_event("runner_on_unreachable", "fatal: [db]: UNREACHABLE!"))
    sink.write_event(_event("verbose", "[WARNING]: no inventory\r\nplain"))
    sink.write_event(_event("runner_on_ok", "[ERROR]: something odd"))
    sink.close()

    assert [r.log_level for r in world.logs(job_id)] == [
        LogLevel.ERROR, LogLevel.WARNING, LogLevel.WARNING, LogLevel.ERROR, LogLevel.WARNING,
        LogLevel.INFO, LogLevel.ERROR]


def test_secret_values_are_redacted_before_they_are_stored_or_handed_on(world):
    job_id = world.job()
    sink = LogSink(engine_for(world.url), world.job_pk(job_id),
                   redactor=Redactor(["hunter2", "s3cr3t-t0ken"]))

    handed_on = sink.write_event(_event("runner_on_ok",
                                        "password=hunter2 token=s3cr3t-t0ken\r\nclean"))
    sink.close()

    assert [r.content for r in world.logs(job_id)] == [
        "password=******** token=********", "clean"]
    assert [text for text, _level in handed_on] == [
        "password=******** token=********", "clean"]


def test_a_chatty_run_is_stored_in_a_few_multi_row_inserts(world):
    job_id = world.job()
    engine = engine_for(world.url)
    inserts: list[int] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.startswith("INSERT INTO job_logs"):
            inserts.append(len(parameters) if executemany else 1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        sink = LogSink(engine, world.job_pk(job_id), batch_rows=500, flush_interval=5)
        for i in range(2_000):
            sink.write_event(_event("runner_on_ok", f"line {i}"))
        sink.close()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    rows = world.logs(job_id)
    assert [r.line_number for r in rows] == list(range(1, 2_001))
    assert sum(inserts) == 2_000
    assert len(inserts) <= 6  # batches of ≥500, never one INSERT per line


def test_a_quiet_run_is_visible_within_the_flush_interval(world):
    job_id = world.job()
    sink = LogSink(engine_for(world.url), world.job_pk(job_id), flush_interval=0.2)

    sink.write_event(_event("playbook_on_task_start", "TASK [Wait] ****"))
    deadline = time.monotonic() + 3
    while not world.logs(job_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    visible_after = 3 - (deadline - time.monotonic())
    sink.close()

    assert [r.content for r in world.logs(job_id)] == ["TASK [Wait] ****"]
    assert visible_after < 1.5


def test_the_line_definition_splits_on_newlines_only():
    lines = event_lines({"event": "runner_on_ok", "stdout": "a\r\n\r\nb\x0cc\nd"})

    assert [text for text, _ in lines] == ["a", "", "b\x0cc", "d"]


def test_the_redactor_catches_a_secret_escaped_quoted_and_line_by_line():
    # given: a multi-line secret with quotes and a backslash
    secret = 'first-line-of-the-secret\nsecond "quoted" line \\ end\n'
    redact = Redactor([secret])

    # then: as JSON prints it, as a shell quotes it, and each line of it in a diff
    assert redact('"msg": "key is first-line-of-the-secret\\nsecond \\"quoted\\" line '
                  '\\\\ end\\n"') == '"msg": "key is ********"'
    assert "secret" not in redact(f"echo {shlex.quote(secret)}")
    diff = "+first-line-of-the-secret\n+second \"quoted\" line \\ end"
    assert redact(diff) == "+********\n+********"


def test_a_private_key_block_is_redacted_across_lines_and_escaped_whatever_its_source():
    key = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n"
           "-----END RSA PRIVATE KEY-----")
    redact = Redactor()

    in_diff = "\n+".join(key.splitlines())
    escaped = json.dumps(key)  # newlines as \n, as Ansible's JSON output prints them
    assert redact(f"before\n+{in_diff}\nafter") == "before\n+********\nafter"
    assert "MIIE" not in redact(f'"content": {escaped}')
    assert redact("a token xoxb-1234567890-abcdefghij here") == "a token ******** here"
