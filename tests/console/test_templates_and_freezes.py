"""Templates, schedules and change freezes in the console: the real app behind
`playbot console --script`, on the shipped examples."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """\
as alice
/templates add nightly-ping ping local
expect Saved template
/run-template nightly-ping
wait job success
/schedules add nightly nightly-ping cron "0 3 * * *" Europe/Paris
expect Schedule
/schedules
expect nightly
/freeze add development 2020-01-01 00:00 2099-01-01 00:00 UTC Console freeze
expect Freeze
/run-template nightly-ping
expect error frozen until
"""


def test_a_template_runs_a_schedule_lists_and_a_freeze_refuses_in_the_console(run_script):
    done = run_script(SCRIPT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "✓ script passed" in out
    assert "succeeded · ping on local" in out
    assert "Console freeze" in out
