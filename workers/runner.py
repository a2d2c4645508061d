"""The one module that imports ansible_runner: run one playbook against one server.

`run_playbook(spec, on_event=..., should_cancel=...)` prepares a private data dir for the job
under the runtime dir (inventory, extra vars, settings), runs ansible-playbook there in the
calling thread, hands every Ansible event to `on_event` as it arrives, and returns a
`RunResult` (status, return code, the failed task/host/message, the recap). The data dir is
removed afterwards: it holds secret values.

Safety:
- Extra vars (and secret vars) are written to `env/extravars` as YAML with every string
  tagged `!unsafe`, in nested lists and dicts too, so Ansible never templates them:
  `{{ lookup('pipe', 'id') }}` stays a literal string.
- The worker's own secrets (Slack token, database URL, `PLAYBOT_VAR_*`) are blanked in the
  playbook's environment, so `lookup('env', ...)` cannot read them.
- `cancel_callback` is always passed: off the main thread ansible-runner installs no signal
  handlers, and this is how cancel, shutdown and a lost job stop the run (SIGKILL to the
  ansible-playbook process group, within `cancel_poll` seconds).
- ansible-runner's `timeout` is the playbook's limit, shorter than the actor's time limit.
- Every process of the run lives in one container (`workers.container`: a PID namespace,
  held by `workers/guard.py`), so ending the run is atomic: after a cancel, a timeout, an
  expired lease, an exception out of ansible-runner, or the death of the worker, nothing the
  run forked goes on — `run_playbook` returns only once the kernel has ended all of it.
- The run's `Lease` (renewed by the worker's heartbeat) is kept in the run's directory; when
  it runs out the guard stops the run (the job ends failed, "stopped by its guard").
- The run's directory is locked while the run lives (`workers.run_dirs`), so a worker
  starting later sweeps what a killed worker left, secrets included, and nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ansible_runner
import yaml
from ansible_runner.exceptions import AnsibleRunnerException

from core.progress import RunProgress
from workers.container import GUARD, ContainerKind, RunContainer, container_kind
from workers.lease import Lease
from workers.run_dirs import RunDir

log = logging.getLogger(__name__)

RUN_MARK = "PLAYBOT_RUN"  # in every run's environment: which processes belong to the run
RunStatus = Literal["success", "failed", "cancelled", "timeout"]
ERROR_MESSAGE_LIMIT = 500
FENCED_MESSAGE = ("stopped by its guard: the worker renewed no lease in time (it was stopped, "
                  "stalled or cut off from its database), so the playbook was stopped part-way "
                  "before the server could be given to another job; it was not run again")
#: Environment variables of the worker that a playbook must not be able to read.
_SCRUBBED_PREFIXES = ("PLAYBOT_", "SLACK_")
_SCRUBBED_NAMES = frozenset({"DATABASE_URL", "REDIS_URL"})


@dataclass(frozen=True)
class HostSpec:
    """One inventory host, from a `servers` row."""

    name: str
    address: str | None = None
    port: int | None = None
    user: str | None = None
    key_path: str | None = None
    local: bool = False
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs. `secret_vars` are passed like extra vars and redacted.

    A run over one host gives `host` (its inventory is built from it); a fleet run gives
    `hosts` (the inventory names the run is limited to) and `inventory_data` (the whole
    inventory, `core.run_inventory`), with `vault_files` to write beside it.
    `extra_env`: more environment for ansible-playbook (the SSH settings).
    """

    job_id: str
    playbook_path: Path
    host: HostSpec | None
    runtime_dir: Path
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    secret_vars: Mapping[str, str] = field(default_factory=dict)
    check_mode: bool = False
    timeout: int = 3600
    cancel_poll: float = 0.5
    hosts: tuple[str, ...] = ()
    inventory_data: Mapping[str, Any] | None = None
    vault_files: Mapping[str, str] = field(default_factory=dict)
    forks: int = 20
    extra_env: Mapping[str, str] = field(default_factory=dict)
    vault_password_file: Path | None = None
    container: ContainerKind | None = None  # None: this machine's (`container_kind()`)

    @property
    def host_names(self) -> tuple[str, ...]:
        if self.hosts:
            return self.hosts
        return (self.host.name,) if self.host is not None else ()


@dataclass
class Failure:
    """The first task that failed (not ignored) or found its host unreachable."""

    task: str
    host: str
    message: str
    unreachable: bool = False
    detail: str = ""  # Ansible's whole message (an unreachable host's spans several lines)

    def describe(self) -> str:
        what = f"unreachable: {self.message}" if self.unreachable else self.message
        return f"Task '{self.task}' failed on {self.host}: {what}"


@dataclass
class HostOutcome:
    """How one host of the run ended, by its own events."""

    failure: Failure | None = None  # its first failure (unreachable included), not rescued
    processed: bool = False  # some play ran on it (Ansible's recap lists it)
    first_at: str | None = None  # `created` of its first and last events
    last_at: str | None = None


@dataclass
class RunResult:
    """How the run ended. `error_message` is set for every status but success.

    hosts: each host's own outcome, for fleet runs (every job ends by its host's result).
    no_hosts_matched: the `hosts:` patterns of plays that matched none of the run's hosts.
    """

    status: RunStatus
    rc: int | None
    progress: RunProgress
    failure: Failure | None = None
    error_message: str | None = None
    hosts: dict[str, HostOutcome] = field(default_factory=dict)
    no_hosts_matched: list[str] = field(default_factory=list)
    final_stats: bool = False  # Ansible printed its recap (the run got to its end)

    @property
    def recap(self) -> dict[str, Any]:
        return self.progress.to_recap()


# events ---------------------------------------------------------------------------------


class EventTracker:
    """Follows Ansible's events: tasks, counters per host, the first failure, the recap."""

    def __init__(self) -> None:
        self.progress = RunProgress()
        self.failure: Failure | None = None
        self.failures = 0
        self.last_error_line: str | None = None
        self.hosts: dict[str, HostOutcome] = {}
        self.no_hosts_matched: list[str] = []
        self.final_stats = False
        self._play_pattern = ""

    def feed(self, event: Mapping[str, Any]) -> bool:
        """Update from one event; True when the progress shown to users changed."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        progress = self.progress
        event_host = str(data.get("host") or "")
        if event_host and kind.startswith("runner_"):
            outcome = self.hosts.setdefault(event_host, HostOutcome())
            created = event.get("created")
            if isinstance(created, str):
                outcome.first_at = outcome.first_at or created
                outcome.last_at = created
        if kind == "playbook_on_play_start":
            self._play_pattern = str(data.get("pattern") or data.get("name") or "")
        if kind == "playbook_on_no_hosts_matched" and self._play_pattern:
            self.no_hosts_matched.append(self._play_pattern)
        for line in (event.get("stdout") or "").splitlines():
            if line.startswith("[ERROR]"):
                self.last_error_line = line.removeprefix("[ERROR]:").strip()
        if kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            if progress.current_task is not None:
                progress.tasks_done += 1
            progress.current_task = str(data.get("task") or data.get("name") or "?")
            return True
        host = str(data.get("host") or "")
        if kind == "runner_on_ok" and host:
            progress.count(host, "ok")
            if (data.get("res") or {}).get("changed"):
                progress.count(host, "changed")
            return True
        if kind == "runner_on_failed" and host:
            if data.get("ignore_errors"):
                progress.count(host, "ok")
                progress.count(host, "ignored")
            else:
                progress.count(host, "failed")
                self._failed(data, host, unreachable=False)
            return True
        if kind == "runner_on_unreachable" and host:
            progress.count(host, "unreachable")
            self._failed(data, host, unreachable=True)
            return True
        if kind == "runner_on_skipped" and host:
            progress.count(host, "skipped")
            return True
        if kind == "playbook_on_stats":
            self._recap(data)
            return True
        return False

    def _failed(self, data: Mapping[str, Any], host: str, *, unreachable: bool) -> None:
        self.failures += 1
        res = data.get("res") or {}
        failure = Failure(task=str(data.get("task") or "?"), host=host,
                          message=result_message(res), unreachable=unreachable,
                          detail=str(res.get("msg") or "") if isinstance(res, Mapping) else "")
        if self.failure is None:
            self.failure = failure
        outcome = self.hosts.setdefault(host, HostOutcome())
        if outcome.failure is None:
            outcome.failure = failure

    def _recap(self, data: Mapping[str, Any]) -> None:
        progress = self.progress
        if progress.current_task is not None:
            progress.tasks_done += 1
            progress.current_task = None
        names = {"ok": "ok", "changed": "changed", "failures": "failed",
                 "dark": "unreachable", "skipped": "skipped", "rescued": "rescued",
                 "ignored": "ignored"}
        hosts: dict[str, dict[str, int]] = {}
        for key, counter in names.items():
            for host, n in (data.get(key) or {}).items():
                hosts.setdefault(host, {c: 0 for c in names.values()})[counter] = int(n)
        if hosts:
            progress.hosts = hosts
        progress.final = True
        self.final_stats = True
        processed = set(data.get("processed") or {}) | set(hosts)
        for host in processed:
            self.hosts.setdefault(str(host), HostOutcome()).processed = True
        # a failure later rescued is not the host's outcome
        for host, counters in hosts.items():
            outcome = self.hosts.get(host)
            if (outcome is not None and outcome.failure is not None
                    and not outcome.failure.unreachable
                    and counters.get("failed", 0) == 0):
                outcome.failure = None


def result_message(res: Mapping[str, Any]) -> str:
    """The one-line reason a task failed, from its result (msg, stderr, reason)."""
    for key in ("msg", "stderr", "reason", "module_stderr", "stdout"):
        value = res.get(key)
        if isinstance(value, str) and value.strip():
            lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
            text = lines[0] if key == "msg" else lines[-1]
            return text[:ERROR_MESSAGE_LIMIT]
    if res.get("censored"):
        return str(res["censored"])[:ERROR_MESSAGE_LIMIT]
    return "no message"


# preparing the private data dir --------------------------------------------------------


class _Unsafe(str):
    """A string Ansible must never template: dumped with the `!unsafe` YAML tag."""


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(
    _Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def _mark_unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, Mapping):
        return {str(k): _mark_unsafe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mark_unsafe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _Unsafe(str(value))


def unsafe_extravars_yaml(variables: Mapping[str, Any]) -> str:
    """Extra vars as YAML where every string (nested too) carries `!unsafe`."""
    return yaml.dump(_mark_unsafe(dict(variables)), Dumper=_UnsafeDumper,
                     default_flow_style=False, allow_unicode=True, sort_keys=True)


def inventory(host: HostSpec | None) -> dict[str, Any]:
    """The YAML/JSON inventory for one host; its tags and environment become groups."""
    if host is None:
        raise ValueError("a run needs a host or an inventory")
    hostvars: dict[str, Any] = {}
    if host.local:
        hostvars["ansible_connection"] = "local"
        # the worker's own interpreter: works inside a virtualenv
        hostvars["ansible_python_interpreter"] = sys.executable
    else:
        if host.address:
            hostvars["ansible_host"] = host.address
        if host.port:
            hostvars["ansible_port"] = int(host.port)
        if host.user:
            hostvars["ansible_user"] = host.user
        if host.key_path:
            hostvars["ansible_ssh_private_key_file"] = host.key_path
    groups = {g: {"hosts": {host.name: None}} for g in host.groups
              if g not in ("all", "ungrouped")}
    return {"all": {"hosts": {host.name: hostvars}, "children": groups}}


def _environment() -> dict[str, str]:
    env = {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        # ansible-playbook from the worker's own installation, venv or not
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    }
    env.setdefault("ANSIBLE_HOST_KEY_CHECKING",
                   os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True"))
    for name in os.environ:
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED_NAMES:
            env[name] = ""
    return env


def prepare_data_dir(spec: RunSpec) -> RunDir:
    """Create and lock the job's private data dir (0700) with its inventory and extra vars
    (0600), and the guard's state dir."""
    run_dir = RunDir.create(spec.runtime_dir, spec.job_id)
    data_dir = run_dir.path
    try:
        _fill_data_dir(spec, data_dir)
    except BaseException:
        run_dir.remove()
        raise
    return run_dir


def _fill_data_dir(spec: RunSpec, data_dir: Path) -> None:
    (data_dir / "env").mkdir(mode=0o700)
    (data_dir / "inventory").mkdir(mode=0o700)
    (data_dir / "guard").mkdir(mode=0o700)
    data = spec.inventory_data if spec.inventory_data is not None else inventory(spec.host)
    _write_private(data_dir / "inventory" / "hosts.json", json.dumps(data))
    for relative, text in spec.vault_files.items():
        target = (data_dir / "inventory" / relative).resolve()
        if not target.is_relative_to((data_dir / "inventory").resolve()):
            continue  # a host or group name that would lead outside the run's directory
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(target, text)
    variables = {**dict(spec.extra_vars), **dict(spec.secret_vars)}
    _write_private(data_dir / "env" / "extravars", unsafe_extravars_yaml(variables))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


# running ----------------------------------------------------------------------------------


def run_playbook(spec: RunSpec, *, on_event: Callable[[dict[str, Any]], None],
                 should_cancel: Callable[[], bool],
                 on_progress: Callable[[RunProgress], None] | None = None,
                 lease: Lease | None = None) -> RunResult:
    """Run the playbook of `spec` to its end; never raises for what the playbook does.

    on_event: called in this thread with each Ansible event (dict with `stdout`, `event`,
        `event_data`, `counter`, `created`), in order.
    should_cancel: polled every `spec.cancel_poll` seconds; True kills the run.
    on_progress: called with a copy of the progress whenever counters or the task change.
    lease: renewed by the caller's heartbeat; once it runs out the run's guard stops the run
        (None: a lease that never runs out).

    Whatever way it returns or raises, nothing of the run is left running (see the module).
    """
    tracker = EventTracker()
    env = _environment()
    env.update(spec.extra_env)
    # plugins' bytecode never lands in the hashed playbook tree (bytecode planted there is
    # caught by the tree hash, which covers __pycache__). No PYTHONPYCACHEPREFIX: it would
    # also hide ansible-core's own installed bytecode, recompiling it on every run.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    run_mark = f"{spec.job_id}:{uuid.uuid4().hex}"
    env[RUN_MARK] = run_mark
    playbook_command = shutil.which("ansible-playbook", path=env["PATH"])
    if playbook_command is None:
        return RunResult("failed", None, tracker.progress, None,
                         "ansible-playbook is not installed on this worker")
    run_dir = prepare_data_dir(spec)
    data_dir = run_dir.path
    container = RunContainer(data_dir / "guard", spec.container or container_kind(),
                             (RUN_MARK, run_mark))
    lease = lease or Lease(None)
    lease.attach(container.state_dir / "lease")

    def handle(event: dict[str, Any]) -> bool:
        container.watch()
        on_event(event)
        if tracker.feed(event) and on_progress is not None:
            on_progress(tracker.progress.copy())
        return False  # nothing is written to the data dir's job_events

    def cancel() -> bool:
        container.watch()  # before a kill: the worker holds the init before it dies
        return should_cancel()

    # ansible-playbook runs under the guard: in the run's container, fenced by the lease
    command = ["-I", str(GUARD), *container.guard_options(), "--", playbook_command,
               str(spec.playbook_path)]
    if spec.check_mode:
        command += ["--check", "--diff"]
    if spec.vault_password_file is not None:
        command += ["--vault-password-file", str(spec.vault_password_file)]
    try:
        try:
            runner = ansible_runner.run(
                private_data_dir=str(data_dir),
                binary=sys.executable,
                cmdline=shlex.join(command),
                inventory=str(data_dir / "inventory" / "hosts.json"),
                limit=",".join(spec.host_names),
                forks=spec.forks,
                envvars=env,
                settings={"pexpect_timeout": spec.cancel_poll, "suppress_ansible_output": True,
                          "suppress_output_file": True},
                event_handler=handle,
                cancel_callback=cancel,
                timeout=spec.timeout,
                quiet=True,
                ident="run",
            )
        except BaseException as exc:
            # an error of ours or of ansible-runner's: the playbook may still be running
            lease.expire()
            container.end(stopped=True)
            if isinstance(exc, AnsibleRunnerException):
                return RunResult("failed", None, tracker.progress, tracker.failure,
                                 f"ansible-runner could not run the playbook: {exc}; the run "
                                 "was stopped")
            raise
        status = runner.status
        container.end(stopped=status in ("canceled", "timeout"))
        fenced = container.fenced()
    finally:
        lease.detach()
        run_dir.remove()
    if fenced is not None and status not in ("canceled", "timeout"):
        return _result("fenced", runner.rc, tracker, spec)
    return _result(status, runner.rc, tracker, spec)


def _result(status: str, rc: int | None, tracker: EventTracker, spec: RunSpec) -> RunResult:
    result = _overall(status, rc, tracker, spec)
    result.hosts = tracker.hosts
    result.no_hosts_matched = tracker.no_hosts_matched
    result.final_stats = tracker.final_stats
    return result


def _overall(status: str, rc: int | None, tracker: EventTracker, spec: RunSpec) -> RunResult:
    progress = tracker.progress
    if status == "successful":
        return RunResult("success", rc, progress)
    if status == "canceled":
        return RunResult("cancelled", rc, progress, tracker.failure, "cancelled")
    if status == "timeout":
        return RunResult("timeout", rc, progress, tracker.failure,
                         f"timed out: the playbook ran longer than its limit of {spec.timeout} s")
    if status == "fenced":
        return RunResult("failed", rc, progress, tracker.failure, FENCED_MESSAGE)
    if tracker.failure is not None:
        message = tracker.failure.describe()
        if tracker.failures > 1:
            message += f" (and {tracker.failures - 1} more failure"
            message += "s)" if tracker.failures > 2 else ")"
        return RunResult("failed", rc, progress, tracker.failure, message)
    reason = tracker.last_error_line or "no task failed; see the log"
    return RunResult("failed", rc, progress, None,
                     f"ansible-playbook exited with code {rc}: {reason}"[:ERROR_MESSAGE_LIMIT * 2])
