"""The interactive console on a pseudo-terminal: a person typing at the prompt, the real app
and workers behind it, Slack drawn in the terminal (messages, live updates, threads, buttons,
modals)."""

from __future__ import annotations

import pexpect
import pytest
from sqlalchemy import select

from db.models import Job, JobStatus, Ticket
from db.session import make_engine, make_session_factory

pytestmark = pytest.mark.slow


def test_running_a_playbook_shows_its_live_output_thread_and_final_recap(start_console) -> None:
    # given the console, as alice (admin)
    console = start_console("--as", "alice")
    console.prompt("alice (admin)")

    # when she runs the succeeding example playbook on the local server
    console.type("/run-playbook ping local")

    # then she sees the ack only she can see, and the job's message with a Cancel button
    console.expect(r"\(only you\): .*Received: ping on local")
    console.expect(r"pending · ping on local")
    console.button("Cancel")
    # and the message updates in place while the output streams into its thread
    console.expect(r"↻ .*ping on local: running")
    console.expect(r"↳ thread of: .*ping on local")
    # and the message ends with the per-host recap (the final state is shown at once, so
    # it may come before the last output lines reach the thread)
    console.expect_all(r"│ +TASK \[", r"│ +PLAY RECAP",
                       r"↻ updated:\s+.*succeeded · ping on local[\s\S]*?Recap\s+"
                       r"local ok \d+ · changed 0 · failed 0 · unreachable 0")
    assert console.quit() == 0


def test_a_failed_run_opens_a_ticket_that_is_taken_and_resolved_with_a_note(
        start_console) -> None:
    # given alice ran the failing example playbook
    console = start_console("--as", "alice")
    console.prompt("alice (admin)")
    console.type("/run-playbook fail local")

    # then the job ends failed, naming the task, and its thread shows the incident ticket
    console.expect(r"failed · fail on local")
    console.expect(r"Error\s+Task 'Check disk space' failed on local")
    console.expect(r"↳ thread of: .*failed · fail on local")
    console.expect(r"Ticket \w+ · fail failed on local")
    console.expect(r"Status: open")
    take = console.button("Take")
    resolve = console.button("Resolve")

    # when she presses Take
    console.type(f"click {take}")
    # then the ticket is hers, in progress, updated in place
    console.expect(r"↻ updated:")
    console.expect(r"Status: in progress")
    console.expect(r"Assignee: @alice")

    # when she presses Resolve and answers the form with a note
    console.type(f"click {resolve}")
    console.expect(r"▣ Resolve")
    console.expect(r"What fixed it\?: ")
    console.type("Freed space on /")
    # then the form is submitted and the ticket shows it is resolved, with her note
    console.expect(r"submitted")
    console.expect(r"Status: resolved")
    console.expect(r"Resolution: Freed space on /")
    assert console.quit() == 0


def test_an_operators_production_run_runs_once_an_admin_approves_it(start_console) -> None:
    # given bob (operator) asks for a run on the production server
    console = start_console("--as", "bob")
    console.prompt("bob (operator)")
    console.type("/run-playbook ping prod-local")

    # then an approval request is posted instead of running it
    console.expect(r"Approval needed: production run")
    console.expect(r"@bob wants to run ping on prod-local")
    approve = console.button("Approve")
    console.expect(r"\(only you\): .*approval")

    # when bob tries to approve his own run, he is refused
    console.type(f"click {approve}")
    console.expect(r"Approve\? \[y/N\]: ")
    console.type("y")
    console.expect(r"\(only you\): ⛔")

    # when alice (admin) approves it
    console.type("as alice")
    console.prompt("alice (admin)")
    console.type(f"click {approve}")
    console.expect(r"Approve\? \[y/N\]: ")
    console.type("y")

    # then the job runs on prod-local and ends with its recap
    console.expect(r"Approved")
    console.expect(r"↻ .*ping on prod-local: running")
    console.expect(r"succeeded · ping on prod-local")
    console.expect(r"Recap\s+prod-local ok \d+")
    assert console.quit() == 0


def test_the_run_form_shows_field_errors_and_asks_again(start_console) -> None:
    # given alice opens the run form (no arguments) and picks the deploy playbook
    console = start_console("--as", "alice")
    console.prompt("alice (admin)")
    console.type("/run-playbook")
    console.expect(r"▣ Run a playbook")
    number = console.expect(r"(\d)\) deploy").group(1)
    console.expect(r"Playbook: ")
    console.type(number)
    # then the form continues with deploy's declared variables
    console.expect(r"Target .*: ")
    console.type("local")
    console.expect(r"version \(Release to deploy.*\): ")

    # when she types a version that does not match its pattern, and keeps the defaults
    console.type("x.y")
    console.expect(r"1\) blue\s+2\) green")
    console.expect(r"color .*\[blue\]: ")
    console.type("2")
    console.expect(r"replicas .*\[2\]: ")
    console.type("")
    console.expect(r"dry_run: yes\? \[y/N\]: ")
    console.type("")
    console.expect(r"Check mode.*\? \[y/N\]: ")
    console.type("")

    # then the app's field error is shown and only that field is asked again
    console.expect(r"✗ version: .*does not match")
    console.expect(r"version \(Release to deploy.*\) \[x\.y\]: ")
    console.type("1.4.2")

    # and the corrected form starts the job with the values given
    console.expect(r"submitted")
    console.expect(r"pending · deploy on local")
    console.type("wait job success")
    console.expect(r"deploying release 1\.4\.2 to the green slot with 2 replicas")
    console.expect(r"job \w+ \(deploy on local\): success")
    assert console.quit() == 0


def test_the_prompt_stays_usable_while_a_job_runs_and_cancel_stops_it(start_console) -> None:
    # given alice started the slow example playbook
    console = start_console("--as", "alice")
    console.prompt("alice (admin)")
    console.type("/run-playbook slow local")
    cancel = console.button("Cancel")
    console.expect(r"↻ .*slow on local: running")

    # when she asks for the running jobs while its output streams in
    console.type("/jobs running")
    # then she gets her answer at once
    console.expect(r"Running and queued jobs\s+.*slow on local · running")

    # when she presses Cancel and confirms
    console.type(f"click {cancel}")
    console.expect(r"\? \[y/N\]: ")
    console.type("y")

    # then the job stops within seconds and says so
    console.expect(r"cancelling")
    console.expect(r"↻ updated:\s+.*cancelled · slow on local")
    assert console.quit() == 0


def test_quitting_while_a_job_runs_asks_first_and_then_cancels_it_without_a_ticket(
        start_console, console_env) -> None:
    # given alice's slow playbook is running
    console = start_console("--as", "alice")
    console.prompt("alice (admin)")
    console.type("/run-playbook slow local")
    console.expect(r"↻ .*slow on local: running")

    # when she types quit, the console asks first; "no" keeps her there
    console.type("quit")
    console.expect(r"1 job not finished: \w+ \(slow on local\)\. Cancel and quit\? \[y/N\]: ")
    console.type("n")
    console.expect(r"staying: the jobs go on")
    console.prompt("alice (admin)")

    # when she quits again and says yes, the job is cancelled (not failed) and she leaves
    console.type("quit")
    console.expect(r"Cancel and quit\? \[y/N\]: ")
    console.type("y")
    console.expect(r"cancelling 1 unfinished job")
    console.child.expect(pexpect.EOF, timeout=60)
    console.child.close()
    assert console.child.exitstatus == 0

    engine = make_engine(console_env["DATABASE_URL"])
    with make_session_factory(engine)() as session:
        [job] = session.scalars(select(Job)).unique().all()
        assert job.status == JobStatus.cancelled
        assert session.scalars(select(Ticket)).all() == []
    engine.dispose()
