"""Playbook files on disk: their place inside the playbook directory, the SHA-256 of everything
a playbook can load from there, Ansible's syntax check, and the check that a registered
playbook is still what was reviewed.

Playbooks run only from the configured playbook directory, only when registered and unchanged
on disk. `playbooks.file_path` holds the path relative to that directory (the registry writes
`NAME.yml`); an absolute path is accepted only when it lies inside the directory.

What "unchanged" covers: the whole playbook directory tree. Every registered playbook sits at
the top of PLAYBOOK_DIR, so PLAYBOOK_DIR is the directory Ansible resolves everything against
for all of them: `roles/` (and role names as sub-directories), `filter_plugins/`,
`lookup_plugins/`, `library/`, `module_utils/`, `collections/`, `group_vars/`, `host_vars/`,
and every relative `include_*`, `import_*`, `vars_files`, `template` or `copy` source — which
may name any file of the tree, a sibling playbook included. No static reading of a playbook
can list what it will load (names can be templated), so the sound rule is the tree itself:

- The *manifest* maps the relative POSIX path of every file under PLAYBOOK_DIR to the SHA-256
  of its content. Symlinks are followed (a link's content counts, wherever it points; a
  dangling link or a directory loop is recorded as such); other non-regular files (FIFOs,
  sockets) are recorded by kind, never read. Skipped: only version-control directories
  (`.git`, `.hg`, `.svn`, `.bzr`), which change on every fetch and which no playbook reads.
  `__pycache__` is NOT skipped: Python loads a plugin's cached bytecode instead of its source
  (an "unchecked" .pyc even without looking at the source), so it is code like any other.
- A playbook's registered hash (`playbooks.file_hash`, 64 hex digits) is the SHA-256 of a
  canonical text naming the format, the playbook's own file and the SHA-256 of the manifest
  (canonical JSON, so no file name can make two manifests hash alike). An edit to
  `roles/foo/tasks/main.yml` changes that file's digest, hence the manifest's hash, hence
  the hash of every playbook of the directory: none runs until an operator reviews the
  change and runs `playbot playbooks sync`.
- The manifest a sync accepted is kept in that sync's `playbook.sync` audit row, so a refused
  run names what changed since (added, removed, modified files). The row is only used for
  the message: the refusal itself depends on the hash alone.

Not covered: what Ansible loads from outside PLAYBOOK_DIR (collections and roles installed on
the worker, ansible.cfg of the worker): that is the worker's installation, not the playbook.
Keep Playbot's own runtime directory, database and archives outside PLAYBOOK_DIR (the CLI's
sync refuses otherwise). A file changed between the check and Ansible reading it is not
caught here; the check runs at launch and again in the worker just before the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from core.errors import InvalidInput, PlaybookChanged
from db.models import AuditLog, Playbook

_CHUNK = 1 << 16
SYNC_ADVICE = "An operator must review it and run `playbot playbooks sync`."

TREE_FORMAT = "playbot-tree-v1"
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
#: More files than this is not a playbook directory but something mounted by mistake.
MAX_TREE_FILES = 5000
#: Audit action of a sync that accepted a new manifest (resource type `playbook_dir`).
SYNC_ACTION = "playbook.sync"
SYNC_RESOURCE = "playbook_dir"
SYNTAX_CHECK_TIMEOUT = 120  # seconds for one `ansible-playbook --syntax-check`
_MESSAGE_LIMIT = 1500  # characters of Ansible's error kept in a refusal
# Worker environment a playbook must not see (as in workers/runner.py).
_SCRUBBED_PREFIXES = ("PLAYBOT_", "SLACK_")
_SCRUBBED_NAMES = frozenset({"DATABASE_URL", "REDIS_URL"})
# The audit sanitizer keeps 50 items per list and 1000 characters per string: the manifest is
# stored as chunks of single-entry strings within those limits (2500 files).
_AUDIT_ITEMS = 50
_AUDIT_STRING = 1000


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


# --- the manifest of the playbook directory -------------------------------------------------


@dataclass(frozen=True)
class TreeChanges:
    """What differs between two manifests, each list sorted by path."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.modified)

    def describe(self, limit: int = 5) -> str:
        """`modified roles/foo/tasks/main.yml, added x.yml and 3 more files`: at most
        `limit` paths, modified first (the likeliest surprise), then added, then removed."""
        named = ([f"modified {p}" for p in self.modified] + [f"added {p}" for p in self.added]
                 + [f"removed {p}" for p in self.removed])
        shown = ", ".join(named[:limit])
        rest = len(named) - limit
        return shown + (f" and {rest} more file{'s' if rest > 1 else ''}" if rest > 0 else "")


def compare_manifests(before: Mapping[str, str], after: Mapping[str, str]) -> TreeChanges:
    """The files added, removed and modified from `before` to `after`."""
    return TreeChanges(
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        modified=sorted(p for p in set(before) & set(after) if before[p] != after[p]),
    )


_cache_lock = threading.Lock()
_digest_cache: dict[str, tuple[tuple[int, ...], str]] = {}
_CACHE_LIMIT = 50_000


def _stat_key(info: os.stat_result) -> tuple[int, ...]:
    # ctime cannot be set back by a user (unlike mtime: `touch -d`), so an edit that keeps
    # size and mtime still gets a new key.
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _content_sha256(path: str) -> str:
    """The SHA-256 of a regular file, cached per process by its inode, size, mtime and ctime.

    The key is taken from the open file before and after reading; a file that changed while
    being read is hashed but not cached.
    """
    with open(path, "rb") as handle:
        before = _stat_key(os.fstat(handle.fileno()))
        with _cache_lock:
            cached = _digest_cache.get(path)
        if cached is not None and cached[0] == before:
            return cached[1]
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
        after = _stat_key(os.fstat(handle.fileno()))
    hexdigest = digest.hexdigest()
    if after == before:
        with _cache_lock:
            if len(_digest_cache) >= _CACHE_LIMIT:
                _digest_cache.clear()
            _digest_cache[path] = (before, hexdigest)
    return hexdigest


def tree_manifest(playbook_dir: str | Path) -> dict[str, str]:
    """The manifest of the playbook directory: relative POSIX path → SHA-256 of every file
    under it (see the module docstring for what is followed, recorded and skipped).

    Non-file entries get a value that is not a digest: `link-dangling:TARGET`,
    `link-loop:TARGET`, `special:KIND`. Deterministic for a given tree.
    Raises InvalidInput when the directory is missing, a file or directory cannot be read,
    or the tree holds more than MAX_TREE_FILES files.
    """
    root = Path(playbook_dir).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInput(f"The playbook directory {root} does not exist or is not a directory "
                           "(set PLAYBOOK_DIR).")
    manifest: dict[str, str] = {}
    _walk(root, "", (str(root),), manifest)
    return manifest


def _walk(directory: Path, prefix: str, chain: tuple[str, ...], manifest: dict[str, str]) -> None:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInput(f"{prefix or '.'}: cannot be listed ({exc.strerror}).") from None
    for entry in entries:
        relative = f"{prefix}{entry.name}"
        try:
            info = os.stat(entry.path)  # follows links
        except FileNotFoundError:
            manifest[relative] = f"link-dangling:{_readlink(entry.path)}"
            continue
        except OSError as exc:
            raise InvalidInput(f"{relative}: cannot be read ({exc.strerror}).") from None
        if stat.S_ISDIR(info.st_mode):
            if entry.name in IGNORED_DIRS:
                continue
            real = os.path.realpath(entry.path)
            if real in chain:
                manifest[relative] = f"link-loop:{_readlink(entry.path)}"
                continue
            _walk(Path(entry.path), f"{relative}/", (*chain, real), manifest)
        elif stat.S_ISREG(info.st_mode):
            try:
                manifest[relative] = _content_sha256(os.path.realpath(entry.path))
            except OSError as exc:
                raise InvalidInput(f"{relative}: cannot be read ({exc.strerror}).") from None
        else:
            manifest[relative] = f"special:{_kind(info.st_mode)}"
        if len(manifest) > MAX_TREE_FILES:
            raise InvalidInput(
                f"The playbook directory holds more than {MAX_TREE_FILES} files; keep in it only "
                "the playbooks and what they load (roles, vars, templates, plugins).")


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "char-device"), (stat.S_ISBLK, "block-device")):
        if test(mode):
            return name
    return "other"


def manifest_sha256(manifest: Mapping[str, str]) -> str:
    """The SHA-256 of a manifest: of its canonical JSON, a list of [path, digest] by path."""
    canonical = json.dumps(sorted([path, digest] for path, digest in manifest.items()),
                           ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def playbook_sha256(playbook_dir: str | Path, file_path: str | Path,
                    manifest: Mapping[str, str] | None = None) -> str:
    """The hash registered for the playbook `file_path` of `playbook_dir`: it covers the
    playbook's own file and the whole directory tree (see the module docstring).

    manifest: the directory's manifest when the caller has it (else it is computed).
    Raises PlaybookChanged when `file_path` is outside the directory, InvalidInput as
    `tree_manifest` does.
    """
    root = Path(playbook_dir).expanduser().resolve()
    entry = resolve_playbook_path(root, file_path).relative_to(root).as_posix()
    tree = manifest_sha256(tree_manifest(root) if manifest is None else manifest)
    text = f"{TREE_FORMAT}\nentry {json.dumps(entry, ensure_ascii=True)}\ntree {tree}\n"
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- the manifest a sync accepted, kept in its audit row ----------------------------------


def manifest_details(manifest: Mapping[str, str]) -> dict[str, Any]:
    """The `details` of a `playbook.sync` audit row that keeps `manifest`.

    Stored as lists of "DIGEST PATH" strings, sized to pass the audit sanitizer untouched;
    a manifest too large (or with names it would alter) is kept only by its hash, and a
    refused run then says that the tree changed without naming the files.
    """
    entries = [f"{digest} {path}" for path, digest in sorted(manifest.items())]
    details: dict[str, Any] = {"tree_sha256": manifest_sha256(manifest), "files": len(manifest)}
    storable = (len(entries) <= _AUDIT_ITEMS * _AUDIT_ITEMS
                and all(len(e) <= _AUDIT_STRING and e.isprintable() for e in entries))
    if storable:
        details["manifest"] = [entries[i:i + _AUDIT_ITEMS]
                               for i in range(0, len(entries), _AUDIT_ITEMS)]
    return details


def manifest_from_details(details: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The manifest kept by `manifest_details`, or None when it is absent or was altered on
    its way into the audit trail (its hash no longer matches `tree_sha256`)."""
    if not isinstance(details, Mapping) or not isinstance(details.get("manifest"), list):
        return None
    manifest: dict[str, str] = {}
    for chunk in details["manifest"]:
        if not isinstance(chunk, list):
            return None
        for entry in chunk:
            if not isinstance(entry, str) or " " not in entry:
                return None
            digest, path = entry.split(" ", 1)
            manifest[path] = digest
    if manifest_sha256(manifest) != details.get("tree_sha256"):
        return None
    return manifest


def latest_sync_details(session: Session) -> dict[str, Any] | None:
    """The details of the latest `playbook.sync` audit row, if any."""
    with session.no_autoflush:
        row = session.scalar(select(AuditLog).where(AuditLog.action == SYNC_ACTION)
                             .order_by(AuditLog.id.desc()).limit(1))
    return dict(row.details or {}) if row is not None else None


def reviewed_manifest(session: Session | None, playbook: Playbook,
                      playbook_dir: str | Path) -> dict[str, str] | None:
    """The manifest behind `playbook.file_hash`: the one kept by the latest sync, provided it
    is intact and really yields the registered hash; else None."""
    if session is None:
        return None
    manifest = manifest_from_details(latest_sync_details(session))
    if manifest is None:
        return None
    try:
        expected = playbook_sha256(playbook_dir, playbook.file_path, manifest)
    except (PlaybookChanged, InvalidInput):
        return None
    return manifest if expected == (playbook.file_hash or "").lower() else None


# --- the check before a run -------------------------------------------------------------


def verify_unchanged(playbook: Playbook, playbook_dir: str | Path) -> Path:
    """Check that `playbook` is still on disk, inside `playbook_dir`, and that neither its file
    nor anything else of the playbook directory changed since it was registered.

    Returns the resolved path to run. Raises PlaybookChanged (with advice to run
    `playbot playbooks sync`) when the file is missing, has moved out of the directory, is not
    a regular file, or the hash of the directory tree differs from `playbook.file_hash` —
    then naming the files added, removed or modified since the sync, when the playbook's
    session can read the manifest that sync accepted. Fast when nothing changed: one stat
    per file, contents re-read only for files whose inode, size, mtime or ctime moved.
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
        manifest = tree_manifest(playbook_dir)
        actual = playbook_sha256(playbook_dir, playbook.file_path, manifest)
    except InvalidInput as exc:
        raise PlaybookChanged(
            f"Playbook `{name}` cannot run: the playbook directory cannot be checked: "
            f"{exc.message} {SYNC_ADVICE}"
        ) from None
    registered = (playbook.file_hash or "").lower()
    if actual == registered:
        return path
    raise PlaybookChanged(
        f"Playbook `{name}` changed on disk since it was registered: "
        f"{_what_changed(playbook, playbook_dir, path, manifest, registered)}. {SYNC_ADVICE}"
    )


def _what_changed(playbook: Playbook, playbook_dir: str | Path, path: Path,
                  manifest: Mapping[str, str], registered: str) -> str:
    reviewed = reviewed_manifest(object_session(playbook), playbook, playbook_dir)
    if reviewed is not None:
        changes = compare_manifests(reviewed, manifest)
        if changes:
            return changes.describe()
    if registered == manifest.get(path.relative_to(Path(playbook_dir).expanduser().resolve())
                                  .as_posix()):
        return ("it was registered before Playbot covered the whole playbook directory "
                "(roles, included files, templates, plugins), so the directory was never "
                "reviewed as a whole")
    return ("the SHA-256 of the playbook directory differs (the files that changed cannot "
            "be named: the manifest of the last sync is not in the audit trail)")


# --- Ansible's syntax check -------------------------------------------------------------


def ansible_playbook_command() -> str | None:
    """The `ansible-playbook` of Playbot's own installation (beside its Python), else the
    one on PATH; None when there is none."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    from shutil import which

    return which("ansible-playbook")


def _scrubbed_environment(scratch: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(_SCRUBBED_PREFIXES) and name not in _SCRUBBED_NAMES}
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        # Plugins' bytecode is neither written into the tree nor read from a __pycache__
        # planted there (the worker's runs need the same: see docs/roles-and-safety.md).
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPYCACHEPREFIX": os.path.join(scratch, "pycache"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    })
    return env


def syntax_check(playbook_dir: str | Path, file_paths: Sequence[str],
                 *, timeout: int = SYNTAX_CHECK_TIMEOUT) -> dict[str, str]:
    """Run `ansible-playbook --syntax-check` on the playbooks `file_paths` (relative to
    `playbook_dir`); the playbooks that fail it, each with Ansible's message.

    Runs Playbot's own ansible-playbook with a localhost inventory, in a scratch working
    directory, with the worker's secrets removed from its environment, stdin closed and a
    time limit: all the playbooks in one run, then each one alone only when that run fails
    (so the message is the right playbook's). Raises InvalidInput when ansible-playbook is
    not installed.
    """
    if not file_paths:
        return {}
    command = ansible_playbook_command()
    if command is None:
        raise InvalidInput("ansible-playbook is not installed beside Playbot: the playbooks "
                           "cannot be checked (install ansible-core in Playbot's environment).")
    root = Path(playbook_dir).expanduser().resolve()
    if _syntax_run(command, root, file_paths, timeout) is None:
        return {}
    failures: dict[str, str] = {}
    for file_path in file_paths:
        message = _syntax_run(command, root, [file_path], timeout)
        if message is not None:
            failures[file_path] = message
    if not failures:  # the joint run failed but no single one does: report the joint message
        failures[", ".join(file_paths)] = _syntax_run(command, root, file_paths, timeout) or ""
    return failures


def _syntax_run(command: str, root: Path, file_paths: Iterable[str], timeout: int) -> str | None:
    """None when the syntax check passes, else Ansible's message (trimmed)."""
    with tempfile.TemporaryDirectory(prefix="playbot-syntax-") as scratch:
        try:
            done = subprocess.run(  # noqa: S603 (a fixed program, paths as separate arguments)
                [command, "--syntax-check", "-i", "localhost,",
                 *[str(root / p) for p in file_paths]],
                cwd=scratch, env=_scrubbed_environment(scratch), stdin=subprocess.DEVNULL,
                capture_output=True, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired:
            return f"the syntax check did not finish within {timeout} s"
        except OSError as exc:
            return f"ansible-playbook could not be started ({exc.strerror})"
    if done.returncode == 0:
        return None
    text = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
    text = text.replace(str(root) + os.sep, "")
    lines = [line for line in text.splitlines() if not line.startswith("[WARNING]")]
    message = "\n".join(lines).strip() or f"ansible-playbook exited with {done.returncode}"
    if len(message) > _MESSAGE_LIMIT:
        message = message[:_MESSAGE_LIMIT] + "…"
    return message
