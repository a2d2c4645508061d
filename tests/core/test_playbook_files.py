"""Playbook files on disk: only from the playbook directory, only as registered."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import InvalidInput, PlaybookChanged
from core.playbook_files import file_sha256, resolve_playbook_path, verify_unchanged
from db.models import Playbook

PLAY = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


@pytest.fixture
def book_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    (directory / "ping.yml").write_text(PLAY)
    return directory


def registered(directory: Path, name: str = "ping", file_path: str | None = None) -> Playbook:
    path = directory / f"{name}.yml"
    return Playbook(name=name, file_path=file_path or path.name,
                    file_hash=hashlib.sha256(path.read_bytes()).hexdigest())


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
