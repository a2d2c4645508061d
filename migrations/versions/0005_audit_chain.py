"""A tamper-evident audit trail and the enhanced audit fields of seed v1.2.

- `audit_logs.prev_hash`, `audit_logs.row_hash` (CHAR(64), NOT NULL): each row's sha256 over
  the previous row's hash and its own canonical content (`core.audit.canonical`, version 1,
  frozen here as `_canonical`); `prev_hash` is unique, so the chain cannot fork. Existing
  rows are chained here, in id order.
- `audit_logs.actor_user_id`: the acting user's id as written (the one the hash covers;
  `user_id` is nulled when a user is deleted). Existing rows get their `user_id`.
- `audit_logs.team_id`, `enterprise_id`, `channel_id` (Slack ids), `request_id` (indexed:
  the rows one request wrote).
- `audit_chain_head`: one row (id 1) naming the chain's last row and hash; appenders lock it.

The append-only triggers are dropped while existing rows are chained and made again after;
on SQLite the UPDATE trigger now also keeps the new columns from changing when a deleted
user's `user_id` is set NULL. Needs a live database (the chaining is computed), not
offline SQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
JSON = sa.JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
NEW_COLUMNS = ("actor_user_id", "team_id", "enterprise_id", "channel_id", "request_id",
               "prev_hash", "row_hash")

audit_logs = sa.table(
    "audit_logs",
    sa.column("id", sa.BigInteger()),
    sa.column("user_id", sa.Integer()),
    sa.column("action", sa.String(64)),
    sa.column("resource_type", sa.String(32)),
    sa.column("resource_id", sa.String(64)),
    sa.column("details", JSON),
    sa.column("ip_address", sa.String(45)),
    sa.column("user_agent", sa.String(255)),
    sa.column("timestamp", TIMESTAMP),
    sa.column("actor_user_id", sa.Integer()),
    sa.column("team_id", sa.String(32)),
    sa.column("enterprise_id", sa.String(32)),
    sa.column("channel_id", sa.String(32)),
    sa.column("request_id", sa.String(64)),
    sa.column("prev_hash", sa.CHAR(64)),
    sa.column("row_hash", sa.CHAR(64)),
)
head = sa.table("audit_chain_head", sa.column("id", sa.Integer()),
                sa.column("last_id", sa.BigInteger()), sa.column("last_hash", sa.CHAR(64)))


def upgrade() -> None:
    if context.is_offline_mode():
        raise RuntimeError("revision 0005 chains the existing audit rows: run it online")
    _drop_triggers()
    with op.batch_alter_table("audit_logs") as batch:
        batch.add_column(sa.Column("actor_user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("team_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("enterprise_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("channel_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.CHAR(64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.CHAR(64), nullable=True))
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=True),
        sa.Column("last_hash", sa.CHAR(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    last_id, last_hash = _chain_existing_rows()
    op.bulk_insert(head, [{"id": 1, "last_id": last_id, "last_hash": last_hash}])
    with op.batch_alter_table("audit_logs") as batch:
        batch.alter_column("prev_hash", existing_type=sa.CHAR(64), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.CHAR(64), nullable=False)
    op.create_index("idx_audit_request_id", "audit_logs", ["request_id"])
    op.create_index("uq_audit_prev_hash", "audit_logs", ["prev_hash"], unique=True)
    _create_triggers(NEW_COLUMNS)


def downgrade() -> None:
    _drop_triggers()
    op.drop_index("uq_audit_prev_hash", table_name="audit_logs")
    op.drop_index("idx_audit_request_id", table_name="audit_logs")
    with op.batch_alter_table("audit_logs") as batch:
        for column in reversed(NEW_COLUMNS):
            batch.drop_column(column)
    op.drop_table("audit_chain_head")
    _create_triggers(())


def _iso(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(row: sa.Row) -> str:
    """Version 1 of `core.audit.canonical`, frozen (a test checks they agree)."""
    content = {
        "v": 1, "actor_user_id": row.user_id, "action": row.action,
        "resource_type": row.resource_type, "resource_id": row.resource_id,
        "details": row.details, "ip_address": row.ip_address, "user_agent": row.user_agent,
        "timestamp": _iso(row.timestamp), "team_id": None, "enterprise_id": None,
        "channel_id": None, "request_id": None,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _chain_existing_rows() -> tuple[int | None, str]:
    """Chain every existing row in id order; (last id, last hash)."""
    bind = op.get_bind()
    prev, last_id = GENESIS_HASH, None
    rows = bind.execute(sa.select(audit_logs.c.id, audit_logs.c.user_id, audit_logs.c.action,
                                  audit_logs.c.resource_type, audit_logs.c.resource_id,
                                  audit_logs.c.details, audit_logs.c.ip_address,
                                  audit_logs.c.user_agent, audit_logs.c.timestamp)
                        .order_by(audit_logs.c.id)).all()
    for row in rows:
        row_hash = hashlib.sha256(f"{prev}\n{_canonical(row)}".encode()).hexdigest()
        bind.execute(sa.update(audit_logs).where(audit_logs.c.id == row.id)
                     .values(actor_user_id=row.user_id, prev_hash=prev, row_hash=row_hash))
        prev, last_id = row_hash, row.id
    return last_id, prev


def _drop_triggers() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_delete")
    op.execute("DROP TRIGGER IF EXISTS audit_logs_no_update")


def _create_triggers(extra_columns: tuple[str, ...]) -> None:
    """The append-only triggers of revision 0001; on SQLite the one UPDATE let through (the
    ERD's ON DELETE SET NULL of a deleted user) must also leave `extra_columns` unchanged."""
    if op.get_bind().dialect.name == "sqlite":
        unchanged = "".join(f"AND NEW.{name} IS OLD.{name} " for name in extra_columns)
        op.execute(
            "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs "
            "WHEN NOT (NEW.user_id IS NULL AND OLD.user_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM users WHERE users.id = OLD.user_id) "
            "AND NEW.id = OLD.id AND NEW.action = OLD.action "
            "AND NEW.resource_type = OLD.resource_type "
            "AND NEW.resource_id IS OLD.resource_id AND NEW.details IS OLD.details "
            "AND NEW.ip_address IS OLD.ip_address AND NEW.user_agent IS OLD.user_agent "
            f"AND NEW.timestamp = OLD.timestamp {unchanged}) "
            "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs "
            "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only'"
        )
        op.execute(
            "CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_logs is append-only'"
        )
