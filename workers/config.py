"""The worker's configuration, and the one instance the actors of this process use.

The app wiring builds it from its settings (`WorkerConfig.from_settings(settings)` takes any
object with the settings' attribute names, so workers never import `bot`) and calls
`configure(config)`; actors read it with `current()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_SLACK_API_URL = "https://slack.com/api/"

#: The longest a playbook may run, whatever its own `timeout_seconds` says. The `run_job`
#: actor's Dramatiq time limit is this plus a margin, so Ansible always stops first.
MAX_JOB_TIMEOUT_SECONDS = 24 * 3600


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker, the clock and the embedded runner need.

    Timings are seconds. `job_timeout` is the default limit of one playbook run (a playbook's
    `timeout_seconds` overrides it, capped at MAX_JOB_TIMEOUT_SECONDS).
    """

    database_url: str
    redis_url: str | None = None
    slack_token: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    jobs_channel: str | None = None
    playbook_dir: Path = Path("examples/playbooks")
    runtime_dir: Path = Path("var/runs")
    archive_dir: Path = Path("var/archive")
    job_timeout: int = 3600
    heartbeat_interval: float = 5.0
    # a run whose worker renewed no lease (after a heartbeat) for this long is stopped by its
    # guard; shorter than the reaper's grace, so it is stopped before its servers are freed
    run_lease: float = 10.0
    reaper_grace: float = 15.0
    # pending jobs: requeued when no message id after `requeue_after`, or quiet for
    # `requeue_lost_after` (message lost with Redis)
    requeue_after: float = 15.0
    requeue_lost_after: float = 120.0
    server_wait_delay: float = 3.0  # re-check interval while a job's server is busy
    housekeeping_interval: float = 5.0  # reaper pass: a dead worker's job ends <= 20 s
    retention_interval: float = 3600.0
    log_retention_days: int = 90
    log_batch_rows: int = 500
    log_flush_interval: float = 0.2
    cancel_poll_interval: float = 0.5  # how often ansible-runner asks "cancel?"
    shutdown_grace: float = 25.0  # on SIGTERM: let running playbooks finish this long
    forks: int = 20  # Ansible forks of one run
    known_hosts_file: Path = Path("var/known_hosts")  # Playbot's pinned SSH host keys
    ssh_accept_new_host_keys: bool = False  # labs: pin unknown host keys on first contact
    ssh_connect_timeout: int = 10  # seconds before a host is unreachable
    vault_password_file: Path | None = None  # for vaulted inventory variables
    # a message held by a worker whose Redis heartbeat is this old goes back to the queue
    redelivery_after: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WorkerConfig:
        """Build from an object with the attribute names of `bot.settings.Settings`."""
        values: dict[str, Any] = {
            "database_url": settings.database_url,
            "redis_url": getattr(settings, "redis_url", None) or None,
            "slack_token": getattr(settings, "slack_bot_token", None),
            "slack_api_url": getattr(settings, "slack_api_url", DEFAULT_SLACK_API_URL),
            "jobs_channel": getattr(settings, "playbot_jobs_channel", None),
            "playbook_dir": Path(getattr(settings, "playbook_dir", cls.playbook_dir)),
            "runtime_dir": Path(getattr(settings, "playbot_runtime_dir", cls.runtime_dir)),
            "archive_dir": Path(getattr(settings, "playbot_archive_dir", cls.archive_dir)),
            "job_timeout": int(getattr(settings, "playbot_job_timeout_seconds", cls.job_timeout)),
            "heartbeat_interval": float(
                getattr(settings, "playbot_heartbeat_seconds", cls.heartbeat_interval)),
            "run_lease": float(getattr(settings, "playbot_run_lease_seconds", cls.run_lease)),
            "reaper_grace": float(
                getattr(settings, "playbot_reaper_grace_seconds", cls.reaper_grace)),
            "log_retention_days": int(
                getattr(settings, "playbot_log_retention_days", cls.log_retention_days)),
            "forks": int(getattr(settings, "playbot_forks", cls.forks)),
            "known_hosts_file": Path(
                getattr(settings, "playbot_known_hosts", cls.known_hosts_file)),
            "ssh_accept_new_host_keys": bool(
                getattr(settings, "playbot_ssh_accept_new_host_keys", False)),
            "ssh_connect_timeout": int(
                getattr(settings, "playbot_ssh_connect_timeout", cls.ssh_connect_timeout)),
            "vault_password_file": getattr(settings, "playbot_vault_password_file", None),
            "redelivery_after": float(
                getattr(settings, "playbot_redelivery_seconds", cls.redelivery_after)),
        }
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"unknown WorkerConfig fields: {', '.join(sorted(unknown))}")
        return cls(**values)

    def with_(self, **changes: Any) -> WorkerConfig:
        """A copy with some fields changed (tests, the console)."""
        return replace(self, **changes)

    def timeout_for(self, playbook_timeout: int | None) -> int:
        """The effective limit of one run: the playbook's own, else the default, capped."""
        return max(1, min(playbook_timeout or self.job_timeout, MAX_JOB_TIMEOUT_SECONDS))


_lock = threading.Lock()
_current: WorkerConfig | None = None


def configure(config: WorkerConfig) -> WorkerConfig:
    """Make `config` the one this process's actors use."""
    global _current
    with _lock:
        _current = config
    return config


def current() -> WorkerConfig:
    """The configuration set by `configure`. Raises RuntimeError when there is none."""
    config = _current
    if config is None:
        raise RuntimeError("workers are not configured: call workers.config.configure() first")
    return config
