"""What MariaDB's information_schema shows after `playbot db upgrade`, table by table.

The expectations are written out here from ERD.md (relationships and the Index Coverage Map)
plus the product's additions of revisions 0002 to 0005, not derived from the models, so
that this test is an independent check of both the migrations and the models.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from db.session import make_engine
from tests.support.cli import run_cli
from tests.support.servers import MariaDBServer

pytestmark = pytest.mark.mariadb

# table -> {index name: (columns in order, unique)}; PRIMARY is the id column everywhere.
INDEXES: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "users": {
        "PRIMARY": (("id",), True),
        "uq_users_username": (("username",), True),
        "uq_users_email": (("email",), True),
        "idx_users_role": (("role",), False),
        # 0002: a Slack user maps to one users row
        "uq_users_slack_user_id": (("slack_user_id",), True),
    },
    "servers": {
        "PRIMARY": (("id",), True),
        "uq_servers_hostname": (("hostname",), True),
        "idx_servers_ip_address": (("ip_address",), False),
        "idx_servers_active_env": (("is_active", "environment"), False),
    },
    "playbooks": {
        "PRIMARY": (("id",), True),
        "uq_playbooks_name": (("name",), True),
    },
    "jobs": {
        "PRIMARY": (("id",), True),
        "uq_jobs_job_id": (("job_id",), True),
        "idx_jobs_playbook_id": (("playbook_id",), False),
        "idx_jobs_server_id": (("server_id",), False),
        "idx_jobs_user_id": (("user_id",), False),
        "idx_jobs_status": (("status",), False),
        # the seed's celery_task_id index, named for the Dramatiq message id it holds
        "idx_jobs_dramatiq_message_id": (("dramatiq_message_id",), False),
        "idx_jobs_status_created": (("status", "created_at"), False),
        "idx_jobs_user_status": (("user_id", "status"), False),
        # 0002: one job per (Slack request, target); the index InnoDB adds for retry_of_id
        "uq_jobs_request_key": (("request_key",), True),
        "fk_jobs_retry_of_id_jobs": (("retry_of_id",), False),
        "fk_jobs_approved_by_users": (("approved_by",), False),  # 0013
        # 0003: one job in progress per identical launch
        "idx_jobs_active_fingerprint": (("active_fingerprint",), True),
        # 0004: the jobs of one run; one running job per server
        "idx_jobs_run_id": (("run_id",), False),
        "idx_jobs_running_server_id": (("running_server_id",), True),
    },
    "job_logs": {
        "PRIMARY": (("id",), True),
        "idx_joblogs_job_id": (("job_id",), False),
        "idx_joblogs_timestamp": (("timestamp",), False),
        # one row per line of a job's output
        "idx_joblogs_job_line": (("job_id", "line_number"), True),
    },
    "tickets": {
        "PRIMARY": (("id",), True),
        "uq_tickets_ticket_id": (("ticket_id",), True),
        "idx_tickets_job_id": (("job_id",), False),
        "idx_tickets_created_by": (("created_by",), False),
        "idx_tickets_status": (("status",), False),
        "idx_tickets_status_priority": (("status", "priority"), False),
        "fk_tickets_assignee_id_users": (("assignee_id",), False),  # 0002
        "fk_tickets_closed_by_users": (("closed_by",), False),  # 0012
        "fk_tickets_preview_job_id_jobs": (("preview_job_id",), False),  # 0015
    },
    "audit_logs": {
        "PRIMARY": (("id",), True),
        "idx_audit_user_id": (("user_id",), False),
        "idx_audit_action": (("action",), False),
        "idx_audit_resource_type": (("resource_type",), False),
        "idx_audit_timestamp": (("timestamp",), False),
        "idx_audit_resource": (("resource_type", "resource_id"), False),
        "idx_audit_action_timestamp": (("action", "timestamp"), False),
        "idx_audit_request_id": (("request_id",), False),  # 0005
        "uq_audit_prev_hash": (("prev_hash",), True),  # 0005: the chain cannot fork
    },
    # 0005: the audit chain's head
    "audit_chain_head": {"PRIMARY": (("id",), True)},
    # 0006: leases and the queue epoch the clocks share
    "clock_state": {"PRIMARY": (("name",), True)},
    # 0004: server groups (seed v1.2), their children and members
    "server_groups": {
        "PRIMARY": (("id",), True),
        "uq_server_groups_name": (("name",), True),
    },
    "server_group_children": {
        "PRIMARY": (("parent_id", "child_id"), True),
        "idx_server_group_children_child_id": (("child_id",), False),
    },
    "server_group_members": {
        "PRIMARY": (("group_id", "server_id"), True),
        "idx_server_group_members_server_id": (("server_id",), False),
    },
    # 0009: job templates (seed v1.2)
    "job_templates": {
        "PRIMARY": (("id",), True),
        "uq_job_templates_name": (("name",), True),
        "idx_job_templates_playbook_id": (("playbook_id",), False),
        "idx_job_templates_owner_id": (("owner_id",), False),
    },
    # 0008: personal API tokens (only their SHA-256 is stored)
    "api_tokens": {
        "PRIMARY": (("id",), True),
        "uq_api_tokens_token_id": (("token_id",), True),
        "uq_api_tokens_token_hash": (("token_hash",), True),
        "idx_api_tokens_user_id": (("user_id",), False),
    },
    "schedules": {
        "PRIMARY": (("id",), True),
        "uq_schedules_name": (("name",), True),
        "idx_schedules_due": (("paused", "next_run_at"), False),
        "idx_schedules_template_id": (("template_id",), False),
        "idx_schedules_owner_id": (("owner_id",), False),
        "fk_schedules_approved_by_users": (("approved_by",), False),
    },
    "notification_settings": {
        "PRIMARY": (("id",), True),
        "uq_notification_settings_user_id": (("user_id",), True),
        "uq_notification_settings_channel_id": (("channel_id",), True),
    },
    "notification_log": {
        "PRIMARY": (("id",), True),
        "uq_notification_log_event_key": (("event_key",), True),
    },
    # 0010: change freezes
    "freeze_windows": {
        "PRIMARY": (("id",), True),
        "idx_freeze_windows_ended_at": (("ended_at",), False),
        "fk_freeze_windows_created_by_users": (("created_by",), False),
        "fk_freeze_windows_ended_by_users": (("ended_by",), False),
    },
}

# table -> {(column, referenced table): ON DELETE rule}
FOREIGN_KEYS: dict[str, dict[tuple[str, str], str]] = {
    "users": {},
    "servers": {},
    "playbooks": {},
    "jobs": {
        ("user_id", "users"): "RESTRICT",
        ("server_id", "servers"): "RESTRICT",
        ("playbook_id", "playbooks"): "RESTRICT",
        ("retry_of_id", "jobs"): "SET NULL",  # 0002: a retry outlives the job it retried
        ("approved_by", "users"): "SET NULL",  # 0013: who approved it
    },
    "job_logs": {("job_id", "jobs"): "CASCADE"},
    "tickets": {
        ("created_by", "users"): "RESTRICT",
        ("job_id", "jobs"): "RESTRICT",
        ("assignee_id", "users"): "SET NULL",  # 0002
        ("closed_by", "users"): "SET NULL",  # 0012: who closed it
        ("preview_job_id", "jobs"): "SET NULL",  # 0015: the approval's preview run
    },
    "audit_logs": {("user_id", "users"): "SET NULL"},
    "audit_chain_head": {},
    "clock_state": {},
    "server_groups": {},
    "server_group_children": {("parent_id", "server_groups"): "CASCADE",
                              ("child_id", "server_groups"): "CASCADE"},
    "server_group_members": {("server_id", "servers"): "CASCADE",
                             ("group_id", "server_groups"): "CASCADE"},
    "job_templates": {("playbook_id", "playbooks"): "RESTRICT",
                      ("owner_id", "users"): "RESTRICT"},
    "api_tokens": {("user_id", "users"): "CASCADE"},  # 0008: a user's tokens go with them
    "freeze_windows": {("created_by", "users"): "SET NULL", ("ended_by", "users"): "SET NULL"},
    "notification_settings": {("user_id", "users"): "CASCADE"},
    "notification_log": {},
    "schedules": {("template_id", "job_templates"): "RESTRICT", ("owner_id", "users"): "RESTRICT",
                  ("approved_by", "users"): "SET NULL"},
}

# Columns whose type matters to the ERD: BIGINT keys of the hot tables, UUID strings,
# microsecond timestamps, the ENUMs' values.
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "users": {
        "id": "int(11)",
        "role": "enum('admin','operator','viewer')",
        "created_at": "datetime(6)",
        "is_active": "tinyint(1)",
    },
    "servers": {
        "id": "int(11)",
        "environment": "enum('production','staging','development')",
        "ssh_port": "int(11)",
        "ip_address": "varchar(255)",  # 0004: DNS names as well as IP literals
    },
    "playbooks": {"id": "int(11)", "file_hash": "char(64)"},
    "jobs": {
        "id": "int(11)",
        "job_id": "char(36)",
        "created_at": "datetime(6)",
        "status": "enum('pending','awaiting_approval','running','success','failed',"
        "'cancelled','archived')",
        "active_fingerprint": "char(64)",  # 0003
        "run_id": "char(36)",  # 0004
        "outcome": "enum('pending','awaiting_approval','running','success','failed',"
        "'cancelled','archived')",  # 0006, CHECKed to the three endings
        "archived_at": "datetime(6)",  # 0006
        "enqueued_at": "datetime(6)",
        "received_at": "datetime(6)",
    },
    "job_logs": {
        "id": "bigint(20)",
        "job_id": "int(11)",
        "content": "text",
        "log_level": "enum('DEBUG','INFO','WARNING','ERROR')",
    },
    "tickets": {
        "id": "int(11)",
        "ticket_id": "char(36)",
        "status": "enum('open','in_progress','resolved','closed')",
        "priority": "enum('critical','high','medium','low')",
        "kind": "enum('incident','approval')",
        "request_digest": "char(64)",  # 0014
        "approvals_needed": "int(11)",  # 0014
    },
    "audit_logs": {"id": "bigint(20)", "timestamp": "datetime(6)",
                   "prev_hash": "char(64)", "row_hash": "char(64)"},  # 0005
    "audit_chain_head": {"id": "int(11)", "last_id": "bigint(20)", "last_hash": "char(64)"},
    "clock_state": {"name": "varchar(64)", "expires_at": "datetime(6)",
                    "updated_at": "datetime(6)"},
    "server_groups": {"id": "int(11)", "name": "varchar(255)"},
    "server_group_children": {"parent_id": "int(11)", "child_id": "int(11)"},
    "server_group_members": {"group_id": "int(11)", "server_id": "int(11)"},
    "job_templates": {"id": "int(11)", "name": "varchar(64)", "playbook_hash": "char(64)",
                      "created_at": "datetime(6)"},
    "api_tokens": {"id": "int(11)", "token_hash": "char(64)", "token_id": "char(36)",
                   "expires_at": "datetime(6)"},
    "schedules": {"next_run_at": "datetime(6)", "approved_hash": "char(64)"},
    "notification_settings": {"user_id": "int(11)", "channel_id": "varchar(32)"},
    "notification_log": {"event_key": "varchar(191)"},
    "freeze_windows": {"environment": "enum('production','staging','development')",
                       "ends_at": "datetime(6)"},
}

# MariaDB stores JSON as LONGTEXT with a json_valid() CHECK (alembic counts JSON and
# LONGTEXT as synonyms, so this is checked here, not by the autogenerate comparison).
JSON_COLUMNS: dict[str, set[str]] = {
    "users": set(),
    "servers": {"tags", "host_vars"},
    "playbooks": {"tags", "variables"},
    "jobs": {"extra_vars", "recap"},
    "job_logs": set(),
    "tickets": {"approvals"},  # 0014
    "audit_logs": {"details"},
    "audit_chain_head": set(),
    "clock_state": set(),
    "server_groups": {"variables"},
    "server_group_children": set(),
    "server_group_members": set(),
    "job_templates": {"variables", "overridable"},
    "api_tokens": set(),
    "freeze_windows": set(),
    "schedules": set(),
    "notification_settings": {"events", "environments", "playbooks"},
    "notification_log": set(),
}

TABLES = list(INDEXES)


@pytest.fixture(scope="module", params=["utf8mb4_server", "stock_server"])
def schema(request):
    """A connection to a MariaDB database built by `playbot db upgrade`: on the suite's server
    (utf8mb4 defaults) and on one with MariaDB's stock defaults (latin1, 0007 pins them)."""
    fixture = "mariadb_server" if request.param == "utf8mb4_server" else "stock_mariadb_server"
    server: MariaDBServer = request.getfixturevalue(fixture)
    url = server.create_database("playbot_schema")
    result = run_cli("db", "upgrade", env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "(head)" in result.stdout
    engine = make_engine(url)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _rows(connection, sql: str, **params):
    return connection.execute(text(sql), params).all()


def test_the_database_holds_the_seed_tables_and_server_groups_and_nothing_else(schema):
    names = {
        row[0]
        for row in _rows(
            schema,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
        )
    }
    assert names == {*TABLES, "alembic_version"}


@pytest.mark.parametrize("table", TABLES)
def test_table_is_innodb_in_utf8mb4(schema, table):
    engine, collation = _rows(
        schema,
        "SELECT engine, table_collation FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = :t",
        t=table,
    )[0]
    assert engine == "InnoDB"
    assert collation == "utf8mb4_bin"  # 0007: whatever the server's defaults


def test_every_table_and_text_column_of_every_revision_is_innodb_utf8mb4_bin(schema):
    # 0007 and the database default it sets: tables of later revisions too; names and keys
    # compare byte for byte, as on SQLite (docs/database.md, "Charsets and collations")
    tables = _rows(schema, "SELECT table_name, engine, table_collation "
                           "FROM information_schema.tables WHERE table_schema = DATABASE()")
    columns = _rows(
        schema,
        "SELECT table_name, column_name, character_set_name, collation_name "
        "FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND collation_name IS NOT NULL")
    assert {(t, e, c) for t, e, c in tables} == {(t, "InnoDB", "utf8mb4_bin") for t, _, _ in tables}
    assert len(columns) > 50
    assert {tuple(row) for row in columns} == {
        (t, c, "utf8mb4", "utf8mb4_bin") for t, c, _, _ in columns}


@pytest.mark.parametrize("table", TABLES)
def test_table_has_every_index_of_the_coverage_map_by_name_and_columns(schema, table):
    found: dict[str, tuple[list[str], bool]] = {}
    for name, column, non_unique in _rows(
        schema,
        "SELECT index_name, column_name, non_unique FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = :t ORDER BY index_name, seq_in_index",
        t=table,
    ):
        columns, _ = found.setdefault(name, ([], non_unique == 0))
        columns.append(column)
    actual = {name: (tuple(columns), unique) for name, (columns, unique) in found.items()}
    assert actual == INDEXES[table]


@pytest.mark.parametrize("table", TABLES)
def test_table_has_every_foreign_key_with_the_erd_delete_rule(schema, table):
    actual = {
        (column, referenced): rule
        for column, referenced, rule, referenced_column in _rows(
            schema,
            "SELECT k.column_name, k.referenced_table_name, r.delete_rule, "
            "       k.referenced_column_name "
            "FROM information_schema.key_column_usage k "
            "JOIN information_schema.referential_constraints r "
            "  ON r.constraint_schema = k.constraint_schema "
            " AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name "
            "WHERE k.table_schema = DATABASE() AND k.table_name = :t "
            "  AND k.referenced_table_name IS NOT NULL",
            t=table,
        )
        if referenced_column == "id"
    }
    assert actual == FOREIGN_KEYS[table]


@pytest.mark.parametrize("table", TABLES)
def test_table_columns_have_the_erd_types(schema, table):
    types = dict(
        _rows(
            schema,
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = :t",
            t=table,
        )
    )
    assert {name: types.get(name) for name in COLUMN_TYPES[table]} == COLUMN_TYPES[table]


@pytest.mark.parametrize("table", TABLES)
def test_json_columns_only_accept_valid_json(schema, table):
    checked = {
        column
        for (column,) in _rows(
            schema,
            "SELECT constraint_name FROM information_schema.check_constraints "
            "WHERE constraint_schema = DATABASE() AND table_name = :t "
            "  AND check_clause LIKE 'json_valid(%'",
            t=table,
        )
    }
    assert checked == JSON_COLUMNS[table]


def test_audit_logs_has_the_append_only_triggers(schema):
    triggers = set(
        _rows(
            schema,
            "SELECT trigger_name, action_timing, event_manipulation "
            "FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE() AND event_object_table = 'audit_logs'",
        )
    )
    assert triggers == {
        ("audit_logs_no_update", "BEFORE", "UPDATE"),
        ("audit_logs_no_delete", "BEFORE", "DELETE"),
    }


def test_an_archived_job_must_keep_its_outcome_a_check_the_database_enforces(schema):
    # 0006 (the migration test shows MariaDB refusing an archived job without one)
    [(clause,)] = _rows(
        schema,
        "SELECT check_clause FROM information_schema.check_constraints "
        "WHERE constraint_schema = DATABASE() AND table_name = 'jobs' "
        "AND constraint_name = 'ck_jobs_archived_keeps_outcome'")
    assert "archived" in clause and "outcome" in clause
