"""`playbot playbooks`: sync registers the playbook directory, list and show it; a mistake
in any sidecar, a failed syntax check or an undeclared prompt refuses the whole sync with exit
code 2; a changed file anywhere in the directory is named."""

from __future__ import annotations

from db.models import AuditLog, Playbook


def test_sync_registers_the_examples_and_a_second_sync_changes_nothing(playbot):
    first = playbot("playbooks", "sync")
    second = playbot("playbooks", "sync")

    assert first.exit_code == 0, first.stderr
    assert "4 new, 0 updated, 0 unchanged, 0 deactivated" in first.stdout
    assert "0 new, 0 updated, 4 unchanged" in second.stdout
    assert playbot.count(Playbook) == 4
    rows = playbot.audits("playbook.register")
    assert sorted(r.resource_id for r in rows) == ["deploy", "fail", "ping", "slow"]
    assert all(r.details["via"] == "cli" and r.details["os_user"] for r in rows)


def test_list_and_show_describe_the_registered_playbooks(playbot):
    playbot("playbooks", "sync")

    by_tag = playbot("playbooks", "list", "--tag", "web")
    shown = playbot("playbooks", "show", "deploy")
    typo = playbot("playbooks", "show", "deplyo")

    assert [line.split()[0] for line in by_tag.stdout.splitlines()] == ["NAME", "deploy"]
    assert "color: choice, of blue/green, default blue" in shown.stdout
    assert "replicas: integer, 1..10, default 2" in shown.stdout
    assert typo.exit_code == 2 and "Did you mean: deploy?" in typo.stderr


def test_a_bad_sidecar_exits_2_naming_file_and_key_and_registers_nothing(playbot):
    (playbot.playbook_dir / "deploy.playbot.yml").write_text(
        "variables:\n  color: {type: choice, choices: [blue, green], default: red}\n")

    result = playbot("playbooks", "sync")

    assert result.exit_code == 2
    assert "deploy.playbot.yml: variables.color: the default 'red'" in result.stderr
    assert playbot.count(Playbook) == 0 and playbot.count(AuditLog) == 0


def test_sync_updates_edited_playbooks_and_deactivates_removed_ones(playbot):
    playbot("playbooks", "sync")
    with (playbot.playbook_dir / "ping.yml").open("a") as handle:
        handle.write("# reviewed change\n")
    (playbot.playbook_dir / "slow.yml").unlink()

    result = playbot("playbooks", "sync")

    assert result.exit_code == 0
    assert "modified ping.yml" in result.stdout and "removed slow.yml" in result.stdout
    assert "~ ping (file_hash)" in result.stdout
    assert "- slow (file gone)" in result.stdout
    assert "slow" not in playbot("playbooks", "list").stdout
    # the tree changed, so every playbook's hash did
    assert sorted(a.resource_id for a in playbot.audits("playbook.update")) == [
        "deploy", "fail", "ping"]
    assert [a.resource_id for a in playbot.audits("playbook.deactivate")] == ["slow"]


def test_a_dry_run_sync_writes_nothing(playbot):
    result = playbot("playbooks", "sync", "--dry-run")

    assert result.exit_code == 0 and "dry run" in result.stdout
    assert playbot.count(Playbook) == 0


def test_an_unmigrated_database_is_explained(tmp_path, playbook_dir):
    from tests.support.cli import run_cli

    result = run_cli("playbooks", "list", env={"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db",
                                                 "PLAYBOOK_DIR": str(playbook_dir)})

    assert result.exit_code == 1
    assert "run `playbot db upgrade` first" in result.stderr


def test_sync_after_an_injected_role_task_says_changed_and_names_the_file(playbot):
    tasks = playbot.playbook_dir / "roles" / "foo" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text("- ansible.builtin.ping:\n")
    playbot("playbooks", "sync")
    (tasks / "main.yml").write_text("- ansible.builtin.ping:\n- ansible.builtin.shell: id\n")

    result = playbot("playbooks", "sync")

    assert result.exit_code == 0, result.stderr
    assert "0 new, 4 updated, 0 unchanged" in result.stdout
    assert "since the last sync (1 file): modified roles/foo/tasks/main.yml." in result.stdout


def test_a_syntax_error_exits_2_with_ansibles_message_and_registers_nothing(playbot):
    (playbot.playbook_dir / "ping.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n      bogus_key: 1\n")

    result = playbot("playbooks", "sync")

    assert result.exit_code == 2
    assert "ping.yml: fails `ansible-playbook --syntax-check`" in result.stderr
    assert "conflicting action statements" in result.stderr
    assert playbot.count(Playbook) == 0


def test_an_undeclared_vars_prompt_exits_2_naming_the_variable(playbot):
    (playbot.playbook_dir / "ask.yml").write_text(
        "- hosts: all\n  vars_prompt:\n    - name: ticket\n      prompt: Ticket?\n"
        "  tasks:\n    - ansible.builtin.ping:\n")

    result = playbot("playbooks", "sync")

    assert result.exit_code == 2
    assert "prompts for `ticket` (vars_prompt)" in result.stderr
    assert "ask.playbot.yml" in result.stderr


def test_a_runtime_dir_inside_the_playbook_dir_is_refused(playbot):
    from tests.support.cli import run_cli

    result = run_cli("playbooks", "sync", env={
        "DATABASE_URL": playbot.url, "PLAYBOOK_DIR": str(playbot.playbook_dir),
        "PLAYBOT_RUNTIME_DIR": str(playbot.playbook_dir / "var" / "runs")})

    assert result.exit_code == 2
    assert "PLAYBOT_RUNTIME_DIR" in result.stderr and "inside PLAYBOOK_DIR" in result.stderr
    assert playbot.count(Playbook) == 0
