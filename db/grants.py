"""Least privilege on MySQL/MariaDB: the GRANT statements for Playbot's runtime database user.

Two database users run Playbot in production:

- the **migration user** (`playbot db upgrade`, the Procfile's `release` process) owns the
  schema: CREATE, ALTER, DROP, INDEX, REFERENCES, TRIGGER... on the database;
- the **runtime user** (the `web`, `worker` and `clock` processes) gets only the data
  privileges below, table by table. It has no DDL privilege at all, so it can neither drop
  the append-only triggers on `audit_logs` nor TRUNCATE or DROP a table (MySQL's TRUNCATE
  needs the DROP privilege, and it does not fire DELETE triggers).

What the runtime needs, and why:

| table         | privileges                     | because                                        |
|---------------|--------------------------------|------------------------------------------------|
| users         | SELECT, INSERT, UPDATE         | auto-provisioning, roles, last_login; never deleted (deactivated) |
| servers       | SELECT, INSERT, UPDATE         | inventory import, deactivation; `SELECT ... FOR UPDATE` serialises claims per server (MySQL 8.0.22+ wants UPDATE, DELETE or LOCK TABLES for it) |
| playbooks     | SELECT, INSERT, UPDATE         | `playbooks sync`; removed playbooks are deactivated, not deleted |
| jobs          | SELECT, INSERT, UPDATE         | the job lifecycle; jobs are soft-deleted (`archived`) |
| job_logs      | SELECT, INSERT, DELETE         | streaming output; retention deletes archived lines; lines never change |
| tickets       | SELECT, INSERT, UPDATE         | incidents and approvals move through statuses  |
| audit_logs    | SELECT, INSERT                 | append-only                                    |
| audit_chain_head | SELECT, INSERT, UPDATE      | appending an audit row locks (UPDATE) and moves the chain's head; INSERT only if the row is missing |
| server_groups | SELECT, INSERT, UPDATE, DELETE | inventory import keeps groups and their variables in step |
| server_group_members, server_group_children | SELECT, INSERT, DELETE | membership follows the inventory |
| clock_state   | SELECT, INSERT, UPDATE         | the clocks' retention lease and queue epoch (INSERT only if a row is missing) |
| api_tokens    | SELECT, INSERT, UPDATE         | `playbot tokens add`, last use, revocation (a revoked token is kept, marked) |
| job_templates | SELECT, INSERT, UPDATE, DELETE | saved launches, removed by their owner or an admin |
| schedules     | SELECT, INSERT, UPDATE, DELETE | the clock claims each fire by UPDATE; removed with `/schedules remove` |
| freeze_windows | SELECT, INSERT, UPDATE        | change freezes; an ended window is kept, marked |
| notification_settings | SELECT, INSERT, UPDATE | `/notify` and channel routes |
| notification_log | SELECT, INSERT              | what was sent once, so it is never sent twice |
| alembic_version | SELECT                       | the app checks the schema revision it runs on  |

A new table must be added to `RUNTIME_PRIVILEGES` (a test fails until it is).
"""

from __future__ import annotations

import re

RUNTIME_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "users": ("SELECT", "INSERT", "UPDATE"),
    "servers": ("SELECT", "INSERT", "UPDATE"),
    "playbooks": ("SELECT", "INSERT", "UPDATE"),
    "jobs": ("SELECT", "INSERT", "UPDATE"),
    "job_logs": ("SELECT", "INSERT", "DELETE"),
    "tickets": ("SELECT", "INSERT", "UPDATE"),
    "audit_logs": ("SELECT", "INSERT"),
    "audit_chain_head": ("SELECT", "INSERT", "UPDATE"),
    "server_groups": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "server_group_members": ("SELECT", "INSERT", "DELETE"),
    "server_group_children": ("SELECT", "INSERT", "DELETE"),
    "clock_state": ("SELECT", "INSERT", "UPDATE"),
    "api_tokens": ("SELECT", "INSERT", "UPDATE"),
    "job_templates": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "schedules": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    "freeze_windows": ("SELECT", "INSERT", "UPDATE"),
    "notification_settings": ("SELECT", "INSERT", "UPDATE"),
    "notification_log": ("SELECT", "INSERT"),
    "alembic_version": ("SELECT",),
}

# MariaDB allows 80 characters in a user name, MySQL 32: accept what both accept.
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
# A host name, an IPv4/IPv6 address, a netmask, or a LIKE pattern with % and _.
_HOST = re.compile(r"[A-Za-z0-9%_.:/-]{1,255}")
_DATABASE = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}")


class GrantInputError(ValueError):
    """A user, host or database name that cannot be put in a GRANT statement safely."""


def runtime_grants(user: str, *, database: str, host: str = "%") -> list[str]:
    """The GRANT statements giving `user`@`host` exactly the runtime privileges on `database`.

    Raises `GrantInputError` for a name that is not a plain MySQL identifier (nothing is
    quoted through: the statements are meant to be piped into the `mysql` client).
    """
    _check(_USER, user, "user name", "letters, digits, '_', '.' and '-', at most 32")
    _check(_HOST, host, "host", "a host name, an IP address or a pattern with '%'")
    _check(_DATABASE, database, "database name", "letters, digits, '_', '$' and '-'")
    account = f"'{user}'@'{host}'"
    return [
        f"GRANT {', '.join(privileges)} ON `{database}`.`{table}` TO {account};"
        for table, privileges in RUNTIME_PRIVILEGES.items()
    ]


def runtime_grants_script(user: str, *, database: str, host: str = "%") -> str:
    """`runtime_grants` as a commented SQL script for the `mysql` client."""
    statements = runtime_grants(user, database=database, host=host)
    header = [
        f"-- Playbot runtime user for the web, worker and clock processes, database `{database}`.",
        "-- Run as an administrator after `playbot db upgrade`. Create the user first, e.g.:",
        f"--   CREATE USER '{user}'@'{host}' IDENTIFIED BY '<a strong password>';",
        "-- No DDL, no DROP (so no TRUNCATE), and only SELECT, INSERT on audit_logs.",
    ]
    return "\n".join([*header, *statements]) + "\n"


def _check(pattern: re.Pattern[str], value: str, what: str, rule: str) -> None:
    if not pattern.fullmatch(value):
        raise GrantInputError(f"invalid {what} {value!r}: use {rule}")
