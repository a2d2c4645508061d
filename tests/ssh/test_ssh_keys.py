"""core.ssh_keys.check_key_file: a key file the worker can use and no one else can read."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.ssh_keys import check_key_file


def test_a_private_key_of_mode_600_is_accepted(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    key.chmod(0o600)
    check_key_file(str(key))


def test_a_missing_key_file_is_refused_naming_the_file(tmp_path):
    with pytest.raises(InvalidInput, match=r"`.*/nope` does not exist on this machine"):
        check_key_file(str(tmp_path / "nope"))


def test_a_directory_is_refused_as_not_a_regular_file(tmp_path):
    with pytest.raises(InvalidInput, match="is not a regular file"):
        check_key_file(str(tmp_path))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o602])
def test_a_key_open_to_group_or_others_is_refused_with_the_chmod_fix(tmp_path, mode):
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    key.chmod(mode)
    with pytest.raises(InvalidInput, match=rf"mode {mode:03o}.*`chmod 600 {key}`"):
        check_key_file(str(key))
