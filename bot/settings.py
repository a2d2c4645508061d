"""The one settings object: every knob Playbot reads from the environment (12-factor).

`load_settings()` validates everything at start and raises `SettingsError` with one line per
bad variable, so an operator sees exactly what to fix before anything else runs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class SettingsError(Exception):
    """The environment holds a value Playbot cannot run with."""


class Settings(BaseSettings):
    """Playbot's configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default="sqlite:///playbot.db",
        description="SQLAlchemy URL; mysql+pymysql://user:pass@host/db in production.",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for the Dramatiq broker; unset runs an in-process broker."
    )
    slack_bot_token: str | None = Field(default=None, repr=False, description="xoxb- bot token.")
    slack_signing_secret: str | None = Field(
        default=None, repr=False, description="Verifies that requests come from Slack."
    )
    slack_app_token: str | None = Field(default=None, repr=False, description="xapp- token for Socket Mode.")
    slack_api_url: str = Field(
        default=DEFAULT_SLACK_API_URL, description="Slack Web API base URL (GovSlack, tests)."
    )
    playbook_dir: Path = Field(
        default=Path("examples/playbooks"),
        description="The only directory playbooks are registered and run from.",
    )
    port: int = Field(default=3000, ge=1, le=65535, description="HTTP port of `playbot web`.")

    playbot_jobs_channel: str | None = Field(
        default=None,
        description="Channel id for job activity when the bot cannot post where the command was typed.",
    )
    playbot_auto_provision: bool = Field(
        default=True, description="Create unknown Slack users as viewers on first contact."
    )
    playbot_slack_team_id: str | None = Field(
        default=None, pattern=r"^T[A-Z0-9_]{2,31}$",
        description="The Slack workspace served (T…); unset: learned from auth.test at start.",
    )
    playbot_slack_enterprise_id: str | None = Field(
        default=None, pattern=r"^E[A-Z0-9_]{2,31}$",
        description="The Enterprise Grid organisation served (E…); unset: learned from auth.test.",
    )
    playbot_admins_self_approve: bool = Field(
        default=False, description="Let an admin approve their own production run (small teams)."
    )
    playbot_approval_ttl_minutes: int = Field(
        default=60, ge=1, description="Minutes before an approval request expires."
    )
    playbot_production_approvers: int = Field(
        default=1, ge=1, le=5,
        description="How many distinct admins (not the requester) must approve a production run.",
    )
    playbot_job_timeout_seconds: int = Field(
        default=3600, ge=10, description="Default limit for one playbook run."
    )
    playbot_heartbeat_seconds: int = Field(
        default=5, ge=1, description="How often a worker marks its running job alive."
    )
    playbot_run_lease_seconds: int = Field(
        default=10, ge=2,
        description="A run whose worker wrote no heartbeat for this long is stopped by its "
        "guard (the worker stalled or lost its database); shorter than the reaper's grace.",
    )
    playbot_reaper_grace_seconds: int = Field(
        default=15, ge=5, description="A running job silent this long is ended as failed."
    )
    playbot_runtime_dir: Path = Field(
        default=Path("var/runs"), description="Private per-job ansible-runner data dirs."
    )
    playbot_archive_dir: Path = Field(
        default=Path("var/archive"), description="Where job logs older than retention are archived."
    )
    playbot_log_retention_days: int = Field(
        default=90, ge=1, description="job_logs older than this are archived and removed."
    )
    playbot_max_targets: int = Field(
        default=50, ge=1, description="Most servers one tag:/env: target may expand to."
    )
    playbot_background_threads: int = Field(
        default=2, ge=1, le=64,
        description="Threads doing the work after each Slack ack in the web process (the "
        "embedded default; with Redis only when Redis cannot take it).",
    )
    playbot_after_ack_threads: int = Field(
        default=4, ge=0, le=64,
        description="Threads of each `playbot worker` doing the work after each Slack ack "
        "(its own queue; playbook runs never hold them). 0: this worker leaves it to others.",
    )
    playbot_redelivery_seconds: float = Field(
        default=60, ge=1, le=3600,
        description="A queue message held by a worker that stopped heartbeating (killed) "
        "goes back to the queue after this long.",
    )
    playbot_forks: int = Field(
        default=20, ge=1, le=500,
        description="Ansible forks of one run: how many of its hosts are worked on at once.",
    )
    playbot_known_hosts: Path = Field(
        default=Path("var/known_hosts"),
        description="Playbot's own known_hosts file: the pinned SSH host keys of its servers.",
    )
    playbot_ssh_accept_new_host_keys: bool = Field(
        default=False,
        description="Pin an unknown host key on first connection (labs only); off: an "
        "unknown key fails the job until `playbot servers trust HOST`.",
    )
    playbot_ssh_connect_timeout: int = Field(
        default=10, ge=1, le=300,
        description="Seconds to wait for an SSH connection before the host is unreachable.",
    )
    playbot_vault_password_file: Path | None = Field(
        default=None,
        description="Ansible Vault password file the workers use for vaulted inventory "
        "variables kept encrypted in the database.",
    )
    playbot_public_url: str | None = Field(
        default=None,
        description="Public base URL of `playbot web` (https://playbot.example.com): the "
        "live log links the Slack job message hands out point there.",
    )
    playbot_api_channel: str | None = Field(
        default=None,
        description="Channel id for the messages of runs launched through the API (their "
        "approval cards); unset: PLAYBOT_JOBS_CHANNEL, else the caller's DM with the bot.",
    )
    playbot_api_rate_limit: str = Field(
        default="300/minute",
        description="Requests one API token (or one live log link) may make, in the `limits` "
        "notation: `300/minute`, `20/second;1000/hour`.",
    )
    playbot_log_link_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60,
        description="How long a live log link handed out in Slack stays valid.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme in ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql"):
            # PyMySQL is the driver we ship; a bare mysql:// would look for MySQLdb.
            return "mysql+pymysql://" + value.split("://", 1)[1] if "://" in value else value
        if scheme.startswith("sqlite"):
            return value
        raise ValueError("must be a sqlite:// or mysql+pymysql:// URL")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("playbot_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("playbot_api_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError("must be a rate like 300/minute or 20/second;1000/hour") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return upper

    @model_validator(mode="after")
    def _lease_between_heartbeat_and_grace(self) -> Settings:
        # the guard must stop a stalled worker's playbook before the reaper frees its
        # servers, and a healthy worker renews its lease at least twice per lease
        if self.playbot_run_lease_seconds >= self.playbot_reaper_grace_seconds:
            raise ValueError(
                f"PLAYBOT_RUN_LEASE_SECONDS ({self.playbot_run_lease_seconds}) must be shorter "
                f"than PLAYBOT_REAPER_GRACE_SECONDS ({self.playbot_reaper_grace_seconds})")
        if 2 * self.playbot_heartbeat_seconds > self.playbot_run_lease_seconds:
            raise ValueError(
                f"PLAYBOT_RUN_LEASE_SECONDS ({self.playbot_run_lease_seconds}) must be at least "
                f"twice PLAYBOT_HEARTBEAT_SECONDS ({self.playbot_heartbeat_seconds})")
        return self

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # Passwords inside URLs stay out of logs and tracebacks; tokens are repr=False.
        for name, value in super().__repr_args__():
            if name in ("database_url", "redis_url") and isinstance(value, str):
                value = _hide_password(value)
            yield name, value

    @property
    def uses_redis(self) -> bool:
        return self.redis_url is not None


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise `SettingsError` naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            # a check across variables has no location; its message names them
            lines.append(f"{name}: {error['msg']}" if name
                         else str(error["msg"]).removeprefix("Value error, "))
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
