"""Script mode: `playbot console --script FILE` runs lines without a person and its exit code
says whether every step went as the script expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.console.conftest import REPO, console_command
from tests.support.cli import run_cli

pytestmark = pytest.mark.slow


def test_the_demo_story_passes_in_script_mode(run_script) -> None:
    # when the shipped demo runs: ping, a typo, fail → ticket taken and resolved, carol (a
    # viewer) refused a run, bob's production run approved by alice
    done = run_script(REPO / "examples" / "console-demo.txt")

    # then every step passed, and the output reads like the conversation
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout
    assert "✓ script passed" in out
    assert "alice (admin)> /run-playbook ping local" in out
    assert "↳ thread of:" in out and "PLAY RECAP" in out
    assert "Ticket" in out and "Status: resolved" in out
    assert "carol (viewer)> /run-playbook ping local" in out
    assert "You need the operator role" in out
    assert "bob (operator)> /run-playbook ping prod-local" in out
    assert "succeeded · ping on prod-local" in out


def test_a_script_whose_expectation_is_not_met_fails(run_script) -> None:
    # given a script expecting to see something that is never shown
    script = "/playbooks\nexpect no ping\n/servers\n"

    # when it runs
    done = run_script(script)

    # then it stops at that line with exit code 1, saying why
    assert done.returncode == 1, done.stdout
    assert "script.txt:2: expected not to see 'ping', but it was shown" in done.stdout
    assert "/servers" not in done.stdout.split("script.txt:2")[1]


def test_a_command_answered_with_an_unannounced_error_fails_the_script(run_script) -> None:
    # given a script with a typo and no `expect error` after it
    done = run_script("/run-playbook pnig local\n/jobs\n")

    # then the script fails on it, quoting the app's answer
    assert done.returncode == 1, done.stdout
    assert "`/run-playbook pnig local` was answered with an error" in done.stdout
    assert "Did you mean: ping?" in done.stdout


def test_a_job_that_ends_otherwise_than_expected_fails_the_script(run_script) -> None:
    # given a script expecting the failing playbook to succeed
    done = run_script("/run-playbook fail local\nwait job success\n")

    # then the script fails, saying how the job ended and why
    assert done.returncode == 1, done.stdout
    assert "ended failed, expected success: Task 'Check disk space' failed" in done.stdout


def test_a_missing_script_file_is_a_usage_error(tmp_path) -> None:
    done = run_cli("console", "--script", str(tmp_path / "nope.txt"))

    assert done.exit_code == 2
    assert "cannot read the script" in done.stderr


def test_readme_command_one_starts_the_console_from_any_directory(console_env, tmp_path) -> None:
    # given Playbot already installed in a virtualenv (the first run of scripts/console
    # creates .venv and installs it; here the test's own virtualenv stands in for it)
    env = {**console_env, "PLAYBOT_VENV": str(Path(sys.executable).parent.parent)}
    del env["PLAYBOOK_DIR"]  # scripts/console finds the examples in its checkout

    # when scripts/console runs a script from stdin, started outside the checkout
    done = subprocess.run([str(REPO / "scripts" / "console"), "--script", "-"],
                          input="/playbooks\nexpect ping\nexpect deploy\n/servers\n"
                                "expect prod-local\n",
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)

    # then the console started with the examples and the script passed
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ script passed" in done.stdout


def test_a_mistyped_command_is_answered_as_slack_does(run_script) -> None:
    # when a script types a command Slack does not know
    done = run_script("/jobz\nexpect error not a valid command\nexpect /jobs\n")

    # then Slack's own answer names the closest commands (the app never heard of /jobz)
    assert done.returncode == 0, done.stdout
    assert "Slack: /jobz is not a valid command. Did you mean /job or /jobs?" in done.stdout


def test_playbot_console_works_from_any_directory_with_the_checkouts_examples(
        console_env, tmp_path) -> None:
    # given the installed command run in an empty directory, PLAYBOOK_DIR unset
    env = {k: v for k, v in console_env.items() if k != "PLAYBOOK_DIR"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = subprocess.run([*console_command(), "console", "--script", "-"],
                          input="/playbooks\nexpect ping\n", env=env, cwd=elsewhere,
                          capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ script passed" in done.stdout


def test_a_console_without_playbooks_stops_before_writing_anything(console_env, tmp_path) -> None:
    env = {**console_env, "PLAYBOOK_DIR": str(tmp_path / "nowhere")}
    for default_here in ("DATABASE_URL", "PLAYBOT_RUNTIME_DIR", "PLAYBOT_ARCHIVE_DIR"):
        env.pop(default_here, None)  # the defaults: playbot.db and var/ in the current directory
    here = tmp_path / "here"
    here.mkdir()

    done = subprocess.run([*console_command(), "console", "--script", "-"], input="/jobs\n",
                          env=env, cwd=here, capture_output=True, text=True, timeout=60,
                          check=False)

    assert done.returncode == 2
    assert "is not a directory: set PLAYBOOK_DIR" in done.stderr
    assert list(here.iterdir()) == []


def test_show_on_app_home_opens_the_job_in_a_view_as_slack_gives_home_clicks_no_reply_url(
        run_script) -> None:
    done = run_script("/run-playbook ping local\nwait job success\nhome\nclick Show\n")

    assert done.returncode == 0, done.stdout
    after_click = done.stdout.split("> click Show", 1)[1]
    assert "(read only)" in after_click and "Recap" in after_click
    assert "#ops (only you)" not in after_click  # not answered in the channel
