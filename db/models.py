"""The seven tables of ERD.md as typed SQLAlchemy models, plus the columns the product adds.

Revision 0001 creates the v1.0.0 seed schema exactly; revision 0002 adds what Playbot needs
beyond it (Slack ids, the job's Slack message, heartbeat, approval tickets...); revision 0003
adds `jobs.active_fingerprint`; revision 0004 adds fleet runs (`jobs.run_id`,
`jobs.running_server_id`), server groups (seed v1.2: `server_groups`, their children and
members) and `servers.host_vars`, and widens `servers.ip_address` to hold DNS names;
revision 0005 chains `audit_logs` rows by hash (`audit_chain_head`) and adds the enhanced
audit fields of seed v1.2 (Slack team, enterprise, channel, request id); revision 0006
adds `jobs.outcome` (kept through archiving), `archived_at`, `enqueued_at`, `received_at`
and `clock_state` (leases and the queue epoch the clocks share). The
migrations are the only way the schema changes; a test proves they produce exactly these
models.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    inspect,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from db.base import Base, JSONType, UTCDateTime, utcnow

# BIGINT primary keys on the hot tables; SQLite only auto-increments INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def new_uuid() -> str:
    return str(uuid.uuid4())


class Role(str, enum.Enum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class Environment(str, enum.Enum):
    production = "production"
    staging = "staging"
    development = "development"


class JobStatus(str, enum.Enum):
    pending = "pending"
    awaiting_approval = "awaiting_approval"
    running = "running"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"
    archived = "archived"

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATUSES


FINAL_JOB_STATUSES = frozenset(
    {JobStatus.success, JobStatus.failed, JobStatus.cancelled, JobStatus.archived}
)
# How a job can end; `jobs.outcome` keeps it when retention archives the job (0006).
OUTCOME_STATUSES = frozenset({JobStatus.success, JobStatus.failed, JobStatus.cancelled})
# A job in one of these is "in progress": an identical launch is answered with it.
ACTIVE_JOB_STATUSES = frozenset(
    {JobStatus.pending, JobStatus.awaiting_approval, JobStatus.running}
)


def job_values(**values: Any) -> dict[str, Any]:
    """The values of an UPDATE on `jobs` rows, with `active_fingerprint` cleared when they
    take the job out of the active statuses or ask for its cancellation, and
    `running_server_id` cleared when they set any status but `running`, and `outcome` set
    when they end the job (success, failed, cancelled), and `state_version` grown by one
    when they set `status` or `cancel_requested` (the order of the job's Slack message).

    Every bulk UPDATE that sets `status` or `cancel_requested` builds its values here, so no
    finished job keeps blocking identical launches or holding its server. (Assigning
    `job.status` or `job.cancel_requested` on a loaded `Job` clears them too, see
    `Job._release_fingerprint`.)
    """
    if _releases_fingerprint(values):
        values["active_fingerprint"] = None
    if _releases_server(values):
        values["running_server_id"] = None
    status = values.get("status")
    if status is not None and JobStatus(status) in OUTCOME_STATUSES:
        values["outcome"] = JobStatus(status)
    if _changes_state(values):
        values["state_version"] = Job.state_version + 1
    return values


def _releases_fingerprint(values: Mapping[str, Any]) -> bool:
    status = values.get("status")
    leaves = status is not None and JobStatus(status) not in ACTIVE_JOB_STATUSES
    return leaves or bool(values.get("cancel_requested"))


def _releases_server(values: Mapping[str, Any]) -> bool:
    status = values.get("status")
    return status is not None and JobStatus(status) != JobStatus.running


def _changes_state(values: Mapping[str, Any]) -> bool:
    """These values change what the job's Slack message shows (`Job.state_version`)."""
    return "status" in values or "cancel_requested" in values


class LogLevel(str, enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class TicketStatus(str, enum.Enum):
    open = "open"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"


class TicketPriority(str, enum.Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class TicketKind(str, enum.Enum):
    incident = "incident"
    approval = "approval"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=True, create_constraint=False, length=24,
                values_callable=lambda members: [m.value for m in members])


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index("idx_users_role", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"), default=Role.viewer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_login: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0002
    slack_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role.value}>"


class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (
        Index("idx_servers_ip_address", "ip_address"),
        Index("idx_servers_active_env", "is_active", "environment"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    # The seed's ip_address is Ansible's `ansible_host`: an IP literal or a DNS name (0004
    # widened it from 45 to 255 characters, DNS names being up to 253).
    ip_address: Mapped[str | None] = mapped_column(String(255))
    os_type: Mapped[str | None] = mapped_column(String(50))
    os_version: Mapped[str | None] = mapped_column(String(50))
    ssh_port: Mapped[int] = mapped_column(Integer, default=22)
    ssh_user: Mapped[str | None] = mapped_column(String(64))
    ssh_key_path: Mapped[str | None] = mapped_column(String(512))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    environment: Mapped[Environment] = mapped_column(
        _enum(Environment, "server_environment"), default=Environment.development
    )
    description: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # 0002: "ssh" or "local" (ansible_connection=local hosts run on the worker itself)
    connection: Mapped[str] = mapped_column(String(16), default="ssh")
    # 0004: the host's own inventory variables that are not connection columns (from an
    # import or the CLI, never from chat), passed to Ansible as host vars.
    host_vars: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    groups: Mapped[list[ServerGroup]] = relationship(
        secondary="server_group_members", back_populates="servers",
        order_by="ServerGroup.name")

    def __repr__(self) -> str:
        return f"<Server {self.hostname} {self.environment.value}>"


class ServerGroup(Base):
    """An inventory group (seed v1.2 `server_groups`): its variables, child groups, members.

    A server is in a group when it is a member of it or of one of its children (at any
    depth), as in Ansible. Targets `group:<name>`.
    """

    __tablename__ = "server_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    servers: Mapped[list[Server]] = relationship(
        secondary="server_group_members", back_populates="groups",
        order_by="Server.hostname")
    children: Mapped[list[ServerGroup]] = relationship(
        secondary="server_group_children",
        primaryjoin="ServerGroup.id == ServerGroupChild.parent_id",
        secondaryjoin="ServerGroup.id == ServerGroupChild.child_id",
        back_populates="parents", order_by="ServerGroup.name")
    parents: Mapped[list[ServerGroup]] = relationship(
        secondary="server_group_children",
        primaryjoin="ServerGroup.id == ServerGroupChild.child_id",
        secondaryjoin="ServerGroup.id == ServerGroupChild.parent_id",
        back_populates="children", order_by="ServerGroup.name")

    def __repr__(self) -> str:
        return f"<ServerGroup {self.name}>"


class ServerGroupMember(Base):
    """A server directly in a group."""

    __tablename__ = "server_group_members"
    __table_args__ = (Index("idx_server_group_members_server_id", "server_id"),)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)


class ServerGroupChild(Base):
    """A group directly inside another (Ansible's `children`; a group may have several
    parents)."""

    __tablename__ = "server_group_children"
    __table_args__ = (Index("idx_server_group_children_child_id", "child_id"),)

    parent_id: Mapped[int] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True)
    child_id: Mapped[int] = mapped_column(
        ForeignKey("server_groups.id", ondelete="CASCADE"), primary_key=True)


class Playbook(Base):
    __tablename__ = "playbooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    file_path: Mapped[str] = mapped_column(String(512))
    file_hash: Mapped[str] = mapped_column(CHAR(64))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Declared variables: {"version": {"type": "string", "required": true, ...}, ...}
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # 0002
    allow_free_vars: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # 0011: the sidecar's `check_safe: true` — a check run of it changes nothing, so a check
    # run on production needs no approval
    check_safe: Mapped[bool] = mapped_column(Boolean, default=False)

    def __repr__(self) -> str:
        return f"<Playbook {self.name}>"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("idx_jobs_playbook_id", "playbook_id"),
        Index("idx_jobs_server_id", "server_id"),
        Index("idx_jobs_user_id", "user_id"),
        Index("idx_jobs_status", "status"),
        Index("idx_jobs_dramatiq_message_id", "dramatiq_message_id"),
        Index("idx_jobs_status_created", "status", "created_at"),
        Index("idx_jobs_user_status", "user_id", "status"),
        # 0003: at most one job in progress per identical launch (NULLs never collide)
        Index("idx_jobs_active_fingerprint", "active_fingerprint", unique=True),
        # 0004: the jobs of one run; at most one running job per server
        Index("idx_jobs_run_id", "run_id"),
        Index("idx_jobs_running_server_id", "running_server_id", unique=True),
        # 0006: an archived job always keeps how it ended
        CheckConstraint("(outcome IS NULL OR outcome IN ('success', 'failed', 'cancelled')) "
                        "AND (status <> 'archived' OR outcome IS NOT NULL)",
                        name="archived_keeps_outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(CHAR(36), unique=True, default=new_uuid)
    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="RESTRICT"))
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="RESTRICT"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus, "job_status"), default=JobStatus.pending
    )
    # The seed's celery_task_id: the queue is Dramatiq, so it holds the Dramatiq message id.
    dramatiq_message_id: Mapped[str | None] = mapped_column(String(64))
    extra_vars: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # 0002
    check_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    slack_message_ts: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Dedupes Slack retries and double clicks: one job per (request, target).
    request_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    recap: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # 0003: SHA-256 of (user, playbook, server, check mode, extra vars) while the job is
    # pending, awaiting approval or running without a cancel request; NULL otherwise.
    # Unique: an identical launch finds this job instead of creating a second one
    # (`core.jobs.launch_fingerprint`).
    active_fingerprint: Mapped[str | None] = mapped_column(CHAR(64))
    # 0004: the run this job belongs to: every job of one launch shares it, and one Ansible
    # run executes them together (a one-server launch is a run of one; older jobs carry
    # their own job_id).
    run_id: Mapped[str] = mapped_column(CHAR(36), default=new_uuid)
    # 0004: the job's server_id while it is running, NULL otherwise. Unique: the database
    # itself refuses a second running job on a server (`core.execution`).
    running_server_id: Mapped[int | None] = mapped_column(Integer)
    # 0006: how the job ended (success, failed, cancelled), kept when it is archived; and
    # when retention archived it (database time).
    outcome: Mapped[JobStatus | None] = mapped_column(_enum(JobStatus, "job_status"))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0006: database time of the last queue message sent for the job's run, and of the last
    # one a worker took (`core.execution`: only a lost message is sent again).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0011: grows by one with every change of status or cancel request, in the UPDATE that
    # makes it (`job_values`, `_release_fingerprint`). A run's state version is the sum over
    # its jobs; it orders the drawings of the run's Slack message (`core.run_messages`).
    state_version: Mapped[int] = mapped_column(Integer, default=1)
    # 0011: on a run's first job (lowest id): the run state version last drawn on the run's
    # Slack message, set by compare-and-set (`core.run_messages.claim`).
    message_version: Mapped[int] = mapped_column(Integer, default=0)
    # 0013: the admin whose approval released the job, and when (NULL: no approval needed)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    playbook: Mapped[Playbook] = relationship(lazy="joined", innerjoin=True)
    server: Mapped[Server] = relationship(lazy="joined", innerjoin=True)
    user: Mapped[User] = relationship(lazy="joined", innerjoin=True, foreign_keys="Job.user_id")
    approver: Mapped[User | None] = relationship(lazy="joined", foreign_keys="Job.approved_by")

    @validates("status", "cancel_requested")
    def _release_fingerprint(self, key: str, value: Any) -> Any:
        """A job that finishes (or is asked to stop) no longer answers identical launches;
        a job that stops running no longer holds its server."""
        if _releases_fingerprint({key: value}):
            self.active_fingerprint = None
        if _releases_server({key: value}):
            self.running_server_id = None
        if key == "status" and value is not None:
            if JobStatus(value) in OUTCOME_STATUSES:
                self.outcome = JobStatus(value)
            elif JobStatus(value) == JobStatus.archived and self.outcome is None \
                    and self.status in OUTCOME_STATUSES:
                self.outcome = self.status
        if inspect(self).persistent:
            # in SQL, so two concurrent changes never share a version (issue 14)
            self.state_version = Job.state_version + 1  # type: ignore[assignment]
        return value

    def __repr__(self) -> str:
        return f"<Job {self.job_id} {self.status.value}>"


class JobLog(Base):
    __tablename__ = "job_logs"
    __table_args__ = (
        Index("idx_joblogs_job_id", "job_id"),
        Index("idx_joblogs_timestamp", "timestamp"),
        Index("idx_joblogs_job_line", "job_id", "line_number", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    line_number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    log_level: Mapped[LogLevel] = mapped_column(_enum(LogLevel, "log_level"), default=LogLevel.INFO)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("idx_tickets_job_id", "job_id"),
        Index("idx_tickets_created_by", "created_by"),
        Index("idx_tickets_status", "status"),
        Index("idx_tickets_status_priority", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[str] = mapped_column(CHAR(36), unique=True, default=new_uuid)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="RESTRICT"))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TicketStatus] = mapped_column(
        _enum(TicketStatus, "ticket_status"), default=TicketStatus.open
    )
    priority: Mapped[TicketPriority] = mapped_column(
        _enum(TicketPriority, "ticket_priority"), default=TicketPriority.medium
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0002
    kind: Mapped[TicketKind] = mapped_column(
        _enum(TicketKind, "ticket_kind"), default=TicketKind.incident
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    slack_message_ts: Mapped[str | None] = mapped_column(String(32))

    # 0012
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # 0014: the digest of the request an approval approves (`core.request_digest`), how many
    # admins must approve it (NULL: one) and the approvals given so far
    request_digest: Mapped[str | None] = mapped_column(CHAR(64))
    approvals_needed: Mapped[int | None] = mapped_column(Integer)
    approvals: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    # 0015: the check-mode run showing what an approval's run would change (`core.jobs`)
    preview_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"))

    job: Mapped[Job | None] = relationship(foreign_keys=[job_id], lazy="joined")
    creator: Mapped[User] = relationship(foreign_keys=[created_by], lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    closer: Mapped[User | None] = relationship(foreign_keys=[closed_by], lazy="joined")


class AuditLog(Base):
    """Append-only: the database refuses UPDATE and DELETE (triggers made by migration 0001).

    Tamper-evident (revision 0005): `row_hash` is sha256 over `prev_hash` (the previous
    row's `row_hash`) and this row's canonical content (`core.audit.canonical`); the unique
    `prev_hash` means the chain can never fork. `actor_user_id` is the acting user's id as
    written (the one the hash covers): `user_id` becomes NULL when the user is deleted
    (ON DELETE SET NULL), `actor_user_id` stays.
    """

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("idx_audit_user_id", "user_id"),
        Index("idx_audit_action", "action"),
        Index("idx_audit_resource_type", "resource_type"),
        Index("idx_audit_timestamp", "timestamp"),
        Index("idx_audit_resource", "resource_type", "resource_id"),
        Index("idx_audit_action_timestamp", "action", "timestamp"),
        Index("idx_audit_request_id", "request_id"),
        Index("uq_audit_prev_hash", "prev_hash", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    team_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(CHAR(64))
    row_hash: Mapped[str] = mapped_column(CHAR(64))


class AuditChainHead(Base):
    """The one row (id 1) naming the last row of the audit chain and its hash.

    Appending locks this row first (`core.audit.record`), so appends are serialised and each
    reads the true head; `audit verify` also checks that the chain ends where it says.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(CHAR(64))


class JobTemplate(Base):
    """A saved launch (seed v1.2 `job_templates`, revision 0009): playbook, target, validated
    variables, check mode, which variables a launch may override, and its owner.

    `playbook_hash` is the playbook's `file_hash` when the template was last saved: a
    template used after the playbook changed says so (`core.templates`).
    """

    __tablename__ = "job_templates"
    __table_args__ = (
        Index("idx_job_templates_playbook_id", "playbook_id"),
        Index("idx_job_templates_owner_id", "owner_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="RESTRICT"))
    target: Mapped[str] = mapped_column(String(255))
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    check_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    overridable: Mapped[list[str]] = mapped_column(JSONType, default=list)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    playbook_hash: Mapped[str] = mapped_column(CHAR(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    playbook: Mapped[Playbook] = relationship(lazy="joined", innerjoin=True)
    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True)

    def __repr__(self) -> str:
        return f"<JobTemplate {self.name}>"


class ApiToken(Base):
    """A personal API token (revision 0008): acts as its user, with the user's role.

    Only `token_hash` (SHA-256 of the token) is stored; the token itself is shown once, when
    made (`core.api_tokens.create`). `prefix` (its first characters) names it in lists.
    A token works while it is not revoked, not expired and its user is active.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("idx_api_tokens_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(CHAR(36), unique=True, default=new_uuid)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class ClockState(Base):
    """A row the clock processes share (0006), all times database time.

    `retention`: a lease (`holder` until `expires_at`) so only one clock archives logs at
    a time. `queue_epoch`: the broker's identity last seen (`value`) and since when
    (`updated_at`): a change means queued messages may be gone (`workers.housekeeping`).
    """

    __tablename__ = "clock_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(String(255))
    holder: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FreezeWindow(Base):
    """A change freeze (revision 0010): launches against `environment` (NULL: every
    environment) are refused while it is in force (`core.freezes`).

    kind "weekly": from `start_day`/`start_minute` to `end_day`/`end_minute` (Monday = 0,
    minutes after local midnight) every week in `timezone`; kind "once": from `starts_at`
    to `ends_at` (UTC). `ended_at` set: ended by an admin, never in force again.
    """

    __tablename__ = "freeze_windows"
    __table_args__ = (Index("idx_freeze_windows_ended_at", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment: Mapped[Environment | None] = mapped_column(
        _enum(Environment, "freeze_environment"))
    kind: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    start_day: Mapped[int | None] = mapped_column(Integer)
    start_minute: Mapped[int | None] = mapped_column(Integer)
    end_day: Mapped[int | None] = mapped_column(Integer)
    end_minute: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def __repr__(self) -> str:
        return f"<FreezeWindow {self.id} {self.kind}>"


class Schedule(Base):
    """A job template run on a cron expression in a time zone, or once at `run_at`
    (revision 0009; `core.schedules`).

    `next_run_at` is the next fire time (UTC; NULL once a one-off schedule has fired); the
    clock claims a fire by moving it with a conditional UPDATE. `missed`: what a fire time
    the clock missed does ("skip" or "once"). `approved_hash`: the template content an admin
    other than the owner approved (production schedules); a different content suspends it.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        Index("idx_schedules_due", "paused", "next_run_at"),
        Index("idx_schedules_template_id", "template_id"),
        Index("idx_schedules_owner_id", "owner_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("job_templates.id", ondelete="RESTRICT"))
    cron: Mapped[str | None] = mapped_column(String(128))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    missed: Mapped[str] = mapped_column(String(8), default="skip")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    approved_hash: Mapped[str | None] = mapped_column(CHAR(64))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    template: Mapped[JobTemplate] = relationship(lazy="joined", innerjoin=True)
    owner: Mapped[User] = relationship(lazy="joined", innerjoin=True, foreign_keys=[owner_id])
    approver: Mapped[User | None] = relationship(lazy="joined", foreign_keys=[approved_by])

    def __repr__(self) -> str:
        return f"<Schedule {self.name}>"


class NotificationSetting(Base):
    """Who is told what, and where (seed v1.1 `notification_settings`, revision 0010;
    `core.notifications`).

    A user's row (`user_id`): the events they want, where (`deliver`: "dm" or a channel id)
    and their quiet hours (`quiet_start`/`quiet_end`, minutes after local midnight in
    `timezone`). A channel route (`channel_id`, set by admins): the events posted there.
    `environments` / `playbooks` narrow failure events (empty: all).
    """

    __tablename__ = "notification_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    channel_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    environments: Mapped[list[str]] = mapped_column(JSONType, default=list)
    playbooks: Mapped[list[str]] = mapped_column(JSONType, default=list)
    deliver: Mapped[str] = mapped_column(String(32), default="dm")
    quiet_start: Mapped[int | None] = mapped_column(Integer)
    quiet_end: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<NotificationSetting user={self.user_id} channel={self.channel_id}>"


class NotificationLog(Base):
    """One row per notification sent by the clock (revision 0010): `event_key` (e.g.
    `job_ended:<job uuid>:<target>`) is unique, so two clocks never send one twice."""

    __tablename__ = "notification_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(191), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
