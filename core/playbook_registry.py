"""The playbook registry: which playbooks of the playbook directory may run, and how.

`sync_playbooks` reads the playbook directory: every `NAME.yml` / `NAME.yaml` directly in it
(not `*.playbot.yml`, not hidden files, not sub-directories) is a playbook named NAME,
registered with the hash of its file and of the whole directory tree (roles, included files,
vars files, templates, plugins: see core/playbook_files) and what its optional sidecar
`NAME.playbot.yml` declares (description, tags, timeout_seconds, allow_free_vars, check_safe,
variables).
New files are registered, changed ones updated, registered playbooks whose file is gone
deactivated. A sync that accepts a changed tree writes one `playbook.sync` audit row keeping
the accepted manifest and naming what changed since the previous one.

Refused, with every problem listed, file and key named, before anything is written (the
caller rolls back): a sidecar or playbook with a mistake; a playbook that fails
`ansible-playbook --syntax-check` (with Ansible's message); a playbook whose plays (or the
plays it imports) prompt for a variable (`vars_prompt`) that its sidecar does not declare
as always given — `required: true` or with a `default` (a secret: `required: true`), so the
run always passes it as an extra var and Ansible never prompts (a prompt would hold the
server until the job's timeout).

Sidecar format (docs/operators.md):

    description: Deploy the web app
    tags: [web]
    timeout_seconds: 600
    allow_free_vars: false
    check_safe: false      # true: a check-mode run changes nothing (see below)
    variables:
      version:  {type: string, required: true, pattern: '^[0-9][0-9.]*$'}
      color:    {type: choice, choices: [blue, green], default: blue}
      replicas: {type: integer, min: 1, max: 10, default: 2}
      db_password: {type: string, secret: true}

`check_safe: true` is the playbook owner's promise that a `--check` run of it is read-only:
no task sets `check_mode: false` (or runs a module that ignores check mode: `command`,
`shell`, `raw`, `script` without `creates`/`removes` run as they are), and no handler or
plugin acts outside check mode. Ansible cannot enforce this, so by default a check run is
treated like any run: on production it needs approval (`core.jobs.needs_approval`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.audit import RequestInfo, is_secret_key
from core.errors import InvalidInput, PlaybookChanged, UnknownPlaybook
from core.extra_vars import KEY_PATTERN, MAX_KEY_LENGTH, TYPES, forbidden_reason
from core.labels import clean_tags, has_tag
from core.playbook_files import (
    SYNC_ACTION,
    SYNC_RESOURCE,
    TreeChanges,
    compare_manifests,
    latest_sync_details,
    manifest_details,
    manifest_from_details,
    manifest_sha256,
    playbook_sha256,
    resolve_playbook_path,
    syntax_check,
    tree_manifest,
)
from core.suggestions import closest
from db.models import Playbook, User

SIDECAR_SUFFIX = ".playbot.yml"
PLAYBOOK_SUFFIXES = (".yml", ".yaml")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TOP_KEYS = ("description", "tags", "timeout_seconds", "allow_free_vars", "check_safe",
            "variables")
VARIABLE_KEYS = ("type", "description", "required", "default", "choices", "pattern",
                 "min", "max", "min_length", "max_length", "secret")
MAX_TIMEOUT_SECONDS = 24 * 3600  # the workers cap every run at a day too
MAX_SIDECAR_BYTES = 256 * 1024
_IMPORT_PLAYBOOK = ("import_playbook", "ansible.builtin.import_playbook",
                    "ansible.legacy.import_playbook")
# Types whose values can never carry a secret, whatever the variable is called.
_SAFE_TYPES = ("choice", "boolean")


@dataclass(frozen=True)
class PlaybookSpec:
    """One playbook file as found on disk, with its (validated) sidecar."""

    name: str
    file_path: str  # relative to the playbook directory
    file_hash: str  # core.playbook_files.playbook_sha256: the file and the directory tree
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    timeout_seconds: int | None = None
    allow_free_vars: bool = False
    check_safe: bool = False
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        return {
            "file_path": self.file_path,
            "file_hash": self.file_hash,
            "description": self.description,
            "tags": list(self.tags),
            "timeout_seconds": self.timeout_seconds,
            "allow_free_vars": self.allow_free_vars,
            "check_safe": self.check_safe,
            "variables": dict(self.variables),
        }


@dataclass
class SyncReport:
    """What `sync_playbooks` did: names registered, updated (with what changed), left
    unchanged, deactivated; files skipped (with why) and warnings."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: The directory's manifest (relative path → SHA-256) and what changed in it since the
    #: last sync that accepted one (None: no earlier manifest to compare with).
    manifest: dict[str, str] = field(default_factory=dict, repr=False)
    tree_changes: TreeChanges | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deactivated)


def sync_playbooks(
    session: Session,
    playbook_dir: str | Path,
    *,
    actor: User | None = None,
    origin: Mapping[str, Any] | None = None,
    request: RequestInfo | None = None,
    check_syntax: bool = True,
) -> SyncReport:
    """Make the registry match the playbook directory (see the module docstring).

    Writes one audit row per playbook registered ("playbook.register"), updated
    ("playbook.update") or deactivated ("playbook.deactivate"), and one "playbook.sync" row
    (resource `playbook_dir`) keeping the manifest whenever the tree differs from the one
    the previous sync accepted. Raises InvalidInput listing every problem (missing
    directory, bad sidecar, unreadable or invalid playbook, two files for one name, an
    undeclared `vars_prompt`, a failed `--syntax-check`) before changing anything.

    check_syntax: run `ansible-playbook --syntax-check` on every playbook that is new or
        whose hash changed (all of them when the tree changed); only tests turn it off.
    """
    report = SyncReport()
    specs = scan_playbook_dir(playbook_dir, report)
    registered = {book.name: book for book in session.scalars(select(Playbook))}
    by_lower = {name.lower(): book for name, book in registered.items()}
    if check_syntax:
        _check_syntax(playbook_dir, specs, registered, by_lower)
    previous = latest_sync_details(session)
    reviewed = manifest_from_details(previous)
    if reviewed is not None:
        report.tree_changes = compare_manifests(reviewed, report.manifest)
    seen: set[int] = set()
    for spec in specs:
        book = registered.get(spec.name) or by_lower.get(spec.name.lower())
        if book is None:
            book = Playbook(name=spec.name, is_active=True, **spec.columns())
            session.add(book)
            session.flush()
            report.created.append(spec.name)
            _audit(session, actor, "playbook.register", book, origin, request,
                   {"file_hash": spec.file_hash, "file_path": spec.file_path,
                    "variables": sorted(spec.variables)})
            seen.add(book.id)
            continue
        seen.add(book.id)
        changes = _apply(book, spec)
        if changes:
            session.flush()
            report.updated[book.name] = sorted(changes)
            _audit(session, actor, "playbook.update", book, origin, request,
                   {"changes": sorted(changes), "file_hash": spec.file_hash})
        else:
            report.unchanged.append(book.name)
    for book in sorted(registered.values(), key=lambda b: b.name):
        if book.id in seen or not book.is_active:
            continue
        book.is_active = False
        session.flush()
        report.deactivated.append(book.name)
        _audit(session, actor, "playbook.deactivate", book, origin, request,
               {"reason": f"{book.file_path} is no longer in the playbook directory"})
    if (previous or {}).get("tree_sha256") != manifest_sha256(report.manifest):
        details: dict[str, Any] = {"playbook_dir": str(Path(playbook_dir).expanduser().resolve())}
        if report.tree_changes is not None:
            details["changes"] = {"added": report.tree_changes.added[:20],
                                  "removed": report.tree_changes.removed[:20],
                                  "modified": report.tree_changes.modified[:20],
                                  "count": report.tree_changes.count}
        details.update(manifest_details(report.manifest))
        audit.record(session, user=actor, action=SYNC_ACTION, resource_type=SYNC_RESOURCE,
                     resource_id=Path(playbook_dir).name or None,
                     details={**(origin or {}), **details}, request=request)
    return report


def _check_syntax(playbook_dir: str | Path, specs: list[PlaybookSpec],
                  registered: dict[str, Playbook], by_lower: dict[str, Playbook]) -> None:
    """Raise InvalidInput when a new or changed playbook fails Ansible's syntax check."""
    to_check = []
    for spec in specs:
        book = registered.get(spec.name) or by_lower.get(spec.name.lower())
        if book is None or book.file_hash != spec.file_hash or not book.is_active:
            to_check.append(spec.file_path)
    failures = syntax_check(playbook_dir, to_check)
    if failures:
        problems = [f"{file_path}: fails `ansible-playbook --syntax-check`:\n      "
                    + message.replace("\n", "\n      ")
                    for file_path, message in sorted(failures.items())]
        raise InvalidInput(f"Playbook sync refused, nothing was changed ({len(problems)} "
                           f"problem{'s' if len(problems) > 1 else ''}):\n  - "
                           + "\n  - ".join(problems))


def scan_playbook_dir(playbook_dir: str | Path, report: SyncReport | None = None) -> list[PlaybookSpec]:
    """Every playbook of the directory with its validated sidecar, by name.

    Files that are YAML but not playbooks (not a list of plays) are skipped and noted in
    `report`. Raises InvalidInput listing every problem found.
    """
    report = report if report is not None else SyncReport()
    root = Path(playbook_dir).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"The playbook directory {root} does not exist or is not a directory "
                           "(set PLAYBOOK_DIR).")
    problems: list[str] = []
    specs: dict[str, PlaybookSpec] = {}
    try:
        report.manifest = tree_manifest(root)
    except InvalidInput as exc:
        raise InvalidInput(f"Playbook sync refused, nothing was changed: {exc.message}") from None
    files = sorted(p for p in root.iterdir() if _is_playbook_name(p.name))
    stems: dict[str, list[str]] = {}
    for path in files:
        stems.setdefault(path.name[: -len(path.suffix)].lower(), []).append(path.name)
    for path in files:
        name = path.name[: -len(path.suffix)]
        if len(stems[name.lower()]) > 1:
            message = (f"{' and '.join(stems[name.lower()])}: two files for the playbook "
                       f"`{name}`; keep one.")
            if message not in problems:
                problems.append(message)
            continue
        spec = _read_playbook(root, path, name, problems, report)
        if spec is not None:
            specs[name] = spec
    for sidecar in sorted(root.glob(f"*{SIDECAR_SUFFIX}")):
        stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
        if stem.lower() not in stems:
            report.warnings.append(f"{sidecar.name} describes no playbook: there is no {stem}.yml.")
    if problems:
        raise InvalidInput(f"Playbook sync refused, nothing was changed ({len(problems)} "
                           f"problem{'s' if len(problems) > 1 else ''}):\n  - "
                           + "\n  - ".join(problems))
    return [specs[name] for name in sorted(specs)]


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The validated content of a `NAME.playbot.yml` as `PlaybookSpec` fields (without name,
    file path and hash). Raises InvalidInput listing every problem, naming the file and key."""
    problems: list[str] = []
    fields = _sidecar(Path(path), problems)
    if problems:
        raise InvalidInput("\n".join(problems))
    return fields


def list_playbooks(
    session: Session, *, tag: str | None = None, active_only: bool = True
) -> list[Playbook]:
    """Registered playbooks by name; optionally only those carrying `tag` (case-insensitive,
    matched in Python so it works on every database) and by default only active ones."""
    query = select(Playbook).order_by(Playbook.name)
    if active_only:
        query = query.where(Playbook.is_active.is_(True))
    found = list(session.scalars(query))
    if tag is not None and tag.strip():
        found = [book for book in found if has_tag(book.tags, tag)]
    return found


def get_playbook(session: Session, name: str, *, active_only: bool = True) -> Playbook:
    """The registered playbook `name` (exact, else case-insensitive).

    Raises UnknownPlaybook with the closest names when it is not registered, or (with
    `active_only`, the default) when it was deactivated because its file disappeared.
    """
    wanted = (name or "").strip()
    book = None
    if wanted:
        book = session.scalar(select(Playbook).where(Playbook.name == wanted)) or session.scalar(
            select(Playbook).where(func.lower(Playbook.name) == wanted.lower()))
    if book is not None and (book.is_active or not active_only):
        return book
    query = select(Playbook.name)
    if active_only:
        query = query.where(Playbook.is_active.is_(True))
    names = list(session.scalars(query))
    if book is not None:
        message = (f"Playbook `{book.name}` is deactivated: its file left the playbook "
                   "directory. Restore it and run `playbot playbooks sync`.")
    else:
        message = f"Playbook `{wanted}` is not registered."
    raise UnknownPlaybook(message, suggestions=closest(wanted, names))


# --- reading the directory -----------------------------------------------------------------


class _PlaybookLoader(yaml.SafeLoader):
    """SafeLoader that reads Ansible's own tags (`!vault`, `!unsafe`) as plain values."""


def _ansible_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_PlaybookLoader.add_multi_constructor("!", _ansible_tag)


def _is_playbook_name(filename: str) -> bool:
    return (filename.endswith(PLAYBOOK_SUFFIXES) and not filename.endswith(SIDECAR_SUFFIX)
            and not filename.startswith("."))


def _read_playbook(root: Path, path: Path, name: str, problems: list[str],
                   report: SyncReport) -> PlaybookSpec | None:
    if not NAME_PATTERN.match(name):
        problems.append(f"{path.name}: `{name}` cannot be a playbook name (letters, digits, "
                        "`_`, `.` and `-`, at most 128 characters); rename the file.")
        return None
    try:
        resolved = resolve_playbook_path(root, path.name)
    except (PlaybookChanged, InvalidInput):
        problems.append(f"{path.name}: is a link to a file outside the playbook directory; "
                        "Playbot runs playbooks only from the directory itself.")
        return None
    if not resolved.is_file():
        if path.is_dir():
            report.skipped[path.name] = "a directory, not a playbook file"
        else:
            problems.append(f"{path.name}: is not a regular file (a broken link?).")
        return None
    try:
        content = resolved.read_bytes()
    except OSError as exc:
        problems.append(f"{path.name}: cannot be read ({exc.strerror}).")
        return None
    try:
        plays = yaml.load(content, Loader=_PlaybookLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: is not valid YAML ({_yaml_error(exc)}).")
        return None
    if not isinstance(plays, list) or not plays or not all(isinstance(p, dict) for p in plays):
        report.skipped[path.name] = "YAML, but not a playbook (a list of plays)"
        return None
    digest = playbook_sha256(root, path.name, report.manifest)
    fields: dict[str, Any] = {}
    sidecar = root / f"{name}{SIDECAR_SUFFIX}"
    before = len(problems)
    if sidecar.exists():
        fields = _sidecar(sidecar, problems)
    if len(problems) == before:
        _check_prompts(root, resolved, plays, path.name, fields.get("variables") or {},
                       problems, report)
    return PlaybookSpec(name=name, file_path=path.name, file_hash=digest, **fields)


def _check_prompts(root: Path, resolved: Path, plays: list[Any], file_name: str,
                   declared: Mapping[str, Any], problems: list[str], report: SyncReport) -> None:
    """Note a problem for every variable the playbook prompts for (`vars_prompt`, in its
    plays and the plays of what it imports by a literal path) that the sidecar does not
    declare as always given."""
    sidecar = f"{file_name.rsplit('.', 1)[0]}{SIDECAR_SUFFIX}"
    for where, prompted in _prompted(root, resolved, plays, file_name, report, set()):
        if prompted is None:
            problems.append(f"{where}: `vars_prompt` in a form Playbot cannot read; use a list "
                            "of `{name: ..., prompt: ...}` with literal names.")
            continue
        spec = declared.get(prompted)
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: prompts for `{prompted}` (vars_prompt), which would stop "
                            f"the run until its timeout: declare `{prompted}` in {sidecar} "
                            "(required, or with a default) so Playbot always passes it.")
        elif spec.get("secret") and not spec.get("required"):
            problems.append(f"{where}: prompts for the secret `{prompted}`; declare it "
                            f"`required: true` in {sidecar}, so a run without "
                            f"PLAYBOT_VAR_{prompted.upper()} is refused instead of prompting.")
        elif not spec.get("secret") and not spec.get("required") and spec.get("default") is None:
            problems.append(f"{where}: prompts for `{prompted}`, which {sidecar} declares as "
                            "optional without a default: a run without it would stop at the "
                            "prompt. Make it `required: true` or give it a `default`.")


def _prompted(root: Path, path: Path, plays: list[Any], shown: str, report: SyncReport,
              visited: set[Path]) -> list[tuple[str, str | None]]:
    """(where, name) of every prompted variable; name None for a form that cannot be read."""
    visited.add(path)
    found: list[tuple[str, str | None]] = []
    for index, play in enumerate(plays, start=1):
        if not isinstance(play, dict):
            continue
        where = f"{shown}, play {play.get('name') or index}"
        prompts = play.get("vars_prompt")
        if isinstance(prompts, dict):  # the old form: name → prompt text
            prompts = [{"name": key} for key in prompts]
        if prompts is not None:
            if not isinstance(prompts, list):
                found.append((where, None))
            for item in prompts or []:
                prompted = item.get("name") if isinstance(item, dict) else None
                valid = isinstance(prompted, str) and "{" not in prompted and prompted.strip()
                found.append((where, prompted.strip() if valid else None))
        for key in _IMPORT_PLAYBOOK:
            target = play.get(key)
            if target is None:
                continue
            found.extend(_imported(root, path, target, where, report, visited))
    return found


def _imported(root: Path, path: Path, target: Any, where: str, report: SyncReport,
              visited: set[Path]) -> list[tuple[str, str | None]]:
    if not isinstance(target, str) or "{" in target:
        report.warnings.append(f"{where}: imports a playbook by a templated name; its "
                               "`vars_prompt`, if any, cannot be checked.")
        return []
    try:
        child = resolve_playbook_path(root, path.parent / target)
    except (PlaybookChanged, InvalidInput):
        return []  # outside the directory: --syntax-check or the run will say so
    if child in visited or not child.is_file():
        return []
    try:
        plays = yaml.load(child.read_bytes(), Loader=_PlaybookLoader)  # noqa: S506 (SafeLoader)
    except (OSError, yaml.YAMLError):
        return []  # --syntax-check reports it
    if not isinstance(plays, list):
        return []
    return _prompted(root, child, plays, child.relative_to(root).as_posix(), report, visited)


def _sidecar(path: Path, problems: list[str]) -> dict[str, Any]:
    where = path.name
    before = len(problems)
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            problems.append(f"{where}: is larger than {MAX_SIDECAR_BYTES // 1024} KiB.")
            return {}
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{where}: cannot be read ({exc.strerror}).")
        return {}
    except UnicodeDecodeError:
        problems.append(f"{where}: is not UTF-8 text.")
        return {}
    except yaml.YAMLError as exc:
        problems.append(f"{where}: is not valid YAML ({_yaml_error(exc)}).")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{where}: must be a mapping of {', '.join(TOP_KEYS)}.")
        return {}
    fields: dict[str, Any] = {}
    for key in data:
        if key not in TOP_KEYS:
            problems.append(f"{where}: unknown key `{key}`{_did_you_mean(str(key), TOP_KEYS)} "
                            f"(known keys: {', '.join(TOP_KEYS)}).")
    if "description" in data and data["description"] is not None:
        if isinstance(data["description"], str):
            fields["description"] = data["description"].strip() or None
        else:
            problems.append(f"{where}: `description` must be text.")
    if data.get("tags") is not None:
        tags = data["tags"]
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list):
            problems.append(f"{where}: `tags` must be a list, e.g. [web, deploy].")
        else:
            try:
                fields["tags"] = clean_tags(tags)
            except InvalidInput as exc:
                problems.append(f"{where}: `tags`: {exc}")
    if data.get("timeout_seconds") is not None:
        timeout = data["timeout_seconds"]
        if (isinstance(timeout, bool) or not isinstance(timeout, int)
                or not 1 <= timeout <= MAX_TIMEOUT_SECONDS):
            problems.append(f"{where}: `timeout_seconds` must be a whole number of seconds from "
                            f"1 to {MAX_TIMEOUT_SECONDS}, not {timeout!r}.")
        else:
            fields["timeout_seconds"] = timeout
    if data.get("allow_free_vars") is not None:
        if not isinstance(data["allow_free_vars"], bool):
            problems.append(f"{where}: `allow_free_vars` must be true or false.")
        else:
            fields["allow_free_vars"] = data["allow_free_vars"]
    if data.get("check_safe") is not None:
        if not isinstance(data["check_safe"], bool):
            problems.append(f"{where}: `check_safe` must be true or false.")
        else:
            fields["check_safe"] = data["check_safe"]
    variables = data.get("variables")
    if variables is not None:
        if not isinstance(variables, dict):
            problems.append(f"{where}: `variables` must be a mapping of variable name to its "
                            "declaration, e.g. `version: {type: string, required: true}`.")
        else:
            fields["variables"] = {}
            for var_name, spec in variables.items():
                checked = _variable(where, str(var_name), spec, problems)
                if checked is not None:
                    fields["variables"][str(var_name)] = checked
    return fields if len(problems) == before else {}


def _variable(where: str, name: str, spec: Any, problems: list[str]) -> dict[str, Any] | None:
    at = f"{where}: variables.{name}"
    before = len(problems)
    if not KEY_PATTERN.match(name) or len(name) > MAX_KEY_LENGTH:
        problems.append(f"{at}: not a valid variable name (letters, digits and `_`, not "
                        f"starting with a digit, at most {MAX_KEY_LENGTH} characters).")
        return None
    reason = forbidden_reason(name)
    if reason:
        problems.append(f"{at}: this name cannot be declared: {reason}.")
        return None
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.append(f"{at}: must be a mapping such as `{{type: string, required: true}}`.")
        return None
    for key in spec:
        if key not in VARIABLE_KEYS:
            problems.append(f"{at}: unknown key `{key}`{_did_you_mean(str(key), VARIABLE_KEYS)} "
                            f"(known keys: {', '.join(VARIABLE_KEYS)}).")
    kind = spec.get("type", "choice" if spec.get("choices") is not None else "string")
    if kind not in TYPES:
        problems.append(f"{at}: unknown type `{kind}`{_did_you_mean(str(kind), TYPES)}; use one "
                        f"of {', '.join(TYPES)}.")
        return None
    out: dict[str, Any] = {"type": kind}
    for flag in ("required", "secret"):
        if flag in spec:
            if not isinstance(spec[flag], bool):
                problems.append(f"{at}: `{flag}` must be true or false.")
            elif spec[flag]:
                out[flag] = True
    if spec.get("description") is not None:
        if isinstance(spec["description"], str):
            out["description"] = spec["description"].strip()
        else:
            problems.append(f"{at}: `description` must be text.")
    _choices(at, kind, spec, out, problems)
    _bounds(at, kind, spec, out, problems)
    if "pattern" in spec:
        _pattern(at, kind, spec["pattern"], out, problems)
    if is_secret_key(name) and kind not in _SAFE_TYPES and not out.get("secret"):
        problems.append(f"{at}: the name looks like a secret, and secrets are never accepted "
                        f"from chat. Declare it `secret: true` (the worker then takes it from "
                        f"the environment variable PLAYBOT_VAR_{name.upper()}), or rename it.")
    if "default" in spec and spec["default"] is not None:
        if out.get("secret"):
            problems.append(f"{at}: a secret variable cannot have a default in this file; the "
                            f"worker takes it from PLAYBOT_VAR_{name.upper()}.")
        elif out.get("required"):
            problems.append(f"{at}: `required: true` and a `default` contradict each other "
                            "(the default would always apply); keep one.")
        elif len(problems) == before:
            checked = _check_default(at, kind, spec["default"], out, problems)
            if checked is not None:
                out["default"] = checked
    return out if len(problems) == before else None


def _choices(at: str, kind: str, spec: dict[str, Any], out: dict[str, Any],
             problems: list[str]) -> None:
    choices = spec.get("choices")
    if kind == "choice" and not choices:
        problems.append(f"{at}: type choice needs `choices`, a list such as [blue, green].")
        return
    if choices is None:
        return
    if kind not in ("choice", "list"):
        problems.append(f"{at}: `choices` only applies to types choice and list.")
        return
    if not isinstance(choices, list) or not choices:
        problems.append(f"{at}: `choices` must be a non-empty list, such as [blue, green].")
        return
    if not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in choices):
        problems.append(f"{at}: every choice must be text or a number.")
        return
    if len({str(c) for c in choices}) != len(choices):
        problems.append(f"{at}: `choices` lists the same value twice.")
        return
    out["choices"] = list(choices)


def _bounds(at: str, kind: str, spec: dict[str, Any], out: dict[str, Any],
            problems: list[str]) -> None:
    numeric = ("integer", "number", "list")
    for low_key, high_key, applies in (("min", "max", numeric),
                                       ("min_length", "max_length", ("string",))):
        values: dict[str, int | float] = {}
        for key in (low_key, high_key):
            if key not in spec or spec[key] is None:
                continue
            value = spec[key]
            if kind not in applies:
                problems.append(f"{at}: `{key}` only applies to type{'s' if len(applies) > 1 else ''} "
                                f"{', '.join(applies)}.")
                continue
            whole = kind in ("integer", "list") or key.endswith("_length")
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                    whole and not isinstance(value, int)) or not math.isfinite(value):
                problems.append(f"{at}: `{key}` must be a {'whole ' if whole else ''}number, "
                                f"not {value!r}.")
                continue
            if (kind == "list" or key.endswith("_length")) and value < 0:
                problems.append(f"{at}: `{key}` cannot be negative.")
                continue
            values[key] = value
            out[key] = value
        if len(values) == 2 and values[low_key] > values[high_key]:
            problems.append(f"{at}: `{low_key}` ({values[low_key]}) is greater than `{high_key}` "
                            f"({values[high_key]}).")


def _pattern(at: str, kind: str, pattern: Any, out: dict[str, Any], problems: list[str]) -> None:
    if kind != "string":
        problems.append(f"{at}: `pattern` only applies to type string.")
        return
    if not isinstance(pattern, str) or not pattern:
        problems.append(f"{at}: `pattern` must be a regular expression in quotes.")
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        problems.append(f"{at}: `pattern` is not a valid regular expression ({exc}).")
        return
    out["pattern"] = pattern


def _check_default(at: str, kind: str, default: Any, out: dict[str, Any],
                   problems: list[str]) -> Any:
    """The default if it satisfies the declaration, else None with a problem noted."""
    bad = f"{at}: the default {default!r} "
    if kind == "string":
        if not isinstance(default, str):
            problems.append(bad + "is not text (put it in quotes).")
            return None
        pattern = out.get("pattern")
        if pattern and re.fullmatch(pattern, default) is None:
            problems.append(bad + f"does not match the pattern {pattern!r}.")
            return None
        low, high = out.get("min_length"), out.get("max_length")
        if (low is not None and len(default) < low) or (high is not None and len(default) > high):
            problems.append(bad + "has the wrong length.")
            return None
        return default
    if kind in ("integer", "number"):
        if isinstance(default, bool) or not isinstance(default, int | float) or (
                kind == "integer" and not isinstance(default, int)):
            problems.append(bad + f"is not {'a whole number' if kind == 'integer' else 'a number'}.")
            return None
        if ("min" in out and default < out["min"]) or ("max" in out and default > out["max"]):
            problems.append(bad + f"is outside {out.get('min', '')}..{out.get('max', '')}.")
            return None
        return default
    if kind == "boolean":
        if not isinstance(default, bool):
            problems.append(bad + "is not true or false.")
            return None
        return default
    if kind == "choice":
        if not any(c == default or str(c) == str(default) for c in out.get("choices", [])):
            problems.append(bad + f"is not one of the choices {out.get('choices')}.")
            return None
        return default
    items = default if isinstance(default, list) else [
        part.strip() for part in str(default).split(",") if part.strip()]
    if not all(isinstance(i, str | int | float) and not isinstance(i, bool) for i in items):
        problems.append(bad + "must be a list of text or numbers.")
        return None
    choices = out.get("choices")
    if choices and any(str(i) not in {str(c) for c in choices} for i in items):
        problems.append(bad + f"has items that are not among the choices {choices}.")
        return None
    return items


# --- registry updates ----------------------------------------------------------------------


def _apply(book: Playbook, spec: PlaybookSpec) -> list[str]:
    """Make `book` match `spec`; the names of what changed."""
    changes: list[str] = []
    for column, wanted in spec.columns().items():
        current = getattr(book, column)
        if column in ("tags", "variables"):
            current = current or ([] if column == "tags" else {})
        if current != wanted:
            setattr(book, column, wanted)
            changes.append(column)
    if book.name != spec.name:
        book.name = spec.name
        changes.append("name")
    if not book.is_active:
        book.is_active = True
        changes.append("reactivated")
    return changes


def _did_you_mean(word: str, candidates: tuple[str, ...]) -> str:
    found = closest(word, candidates, n=1)
    return f" (did you mean `{found[0]}`?)" if found else ""


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def _audit(session: Session, actor: User | None, action: str, book: Playbook,
           origin: Mapping[str, Any] | None, request: RequestInfo | None,
           details: Mapping[str, Any]) -> None:
    audit.record(session, user=actor, action=action, resource_type="playbook",
                 resource_id=book.name, details={**(origin or {}), **details},
                 request=request)
