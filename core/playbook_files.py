"""Playbook files on disk: their SHA-256, their place inside the playbook directory, and the
check that a registered playbook is still the file that was registered.

Playbooks run only from the configured playbook directory, only when registered and unchanged
on disk. `playbooks.file_path` holds the path relative to that directory (the registry writes
`NAME.yml`); an absolute path is accepted only when it lies inside the directory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import InvalidInput, PlaybookChanged
from db.models import Playbook

_CHUNK = 1 << 16
SYNC_ADVICE = "An operator must review it and run `playbot playbooks sync`."


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at `path`, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_playbook_path(playbook_dir: str | Path, file_path: str | Path) -> Path:
    """The real (symlink-free) path of `file_path` inside `playbook_dir`.

    `file_path` is relative to `playbook_dir` (or absolute inside it). Symlinks are resolved
    first, so a link pointing out of the directory is refused like `../` would be.
    Raises InvalidInput when `file_path` is empty, PlaybookChanged when the resolved path is
    not inside the playbook directory. The file need not exist (see `verify_unchanged`).
    """
    if not str(file_path).strip():
        raise InvalidInput("The playbook has no file path.")
    root = Path(playbook_dir).expanduser().resolve()
    candidate = Path(file_path).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise PlaybookChanged(
            f"Playbook file `{file_path}` is outside the playbook directory {root}; "
            "Playbot runs playbooks only from there."
        )
    return resolved


def verify_unchanged(playbook: Playbook, playbook_dir: str | Path) -> Path:
    """Check that `playbook` is still on disk, inside `playbook_dir`, with its registered SHA-256.

    Returns the resolved path to run. Raises PlaybookChanged (with advice to run
    `playbot playbooks sync`) when the file is missing, has moved out of the directory, is not
    a regular file, or its content differs from `playbook.file_hash`.
    """
    name = playbook.name
    try:
        path = resolve_playbook_path(playbook_dir, playbook.file_path)
    except (PlaybookChanged, InvalidInput) as exc:
        raise PlaybookChanged(f"Playbook `{name}` cannot run: {exc.message} {SYNC_ADVICE}") from None
    if not path.exists():
        raise PlaybookChanged(
            f"Playbook `{name}` cannot run: its file {playbook.file_path} is missing from the "
            f"playbook directory. {SYNC_ADVICE}"
        )
    if not path.is_file():
        raise PlaybookChanged(
            f"Playbook `{name}` cannot run: {playbook.file_path} is not a regular file. {SYNC_ADVICE}"
        )
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise PlaybookChanged(
            f"Playbook `{name}` cannot run: its file cannot be read ({exc.strerror}). {SYNC_ADVICE}"
        ) from None
    if actual != (playbook.file_hash or "").lower():
        raise PlaybookChanged(
            f"Playbook `{name}` changed on disk since it was registered (SHA-256 differs). "
            f"{SYNC_ADVICE}"
        )
    return path
