"""The one clock: the database's.

Times that different machines write and compare — heartbeats, `started_at`, when a job's
message was sent or received, leases, `archived_at` — come from the database server, never
from the writing process's own clock, so a worker whose clock is minutes off neither gets
its live jobs reaped nor keeps dead ones alive.

- `db_now()` is a SQL expression for "now, UTC, microseconds" to use inside a statement
  (`UPDATE jobs SET heartbeat_at = db_now() ...`): MySQL/MariaDB `UTC_TIMESTAMP(6)`,
  SQLite `strftime(...)` in the exact text form `UTCDateTime` stores.
- `now(session)` reads that time once (an aware UTC datetime), for comparisons and for
  values that must be known to the caller as well.

SQLite is embedded: its "now" is the clock of the process running the statement. An
install on SQLite is one machine, so all its processes share that clock; a process started
with a deliberately skewed clock (libfaketime) is only kept honest on MySQL/MariaDB.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from db.base import UTCDateTime


class db_now(FunctionElement[datetime]):  # noqa: N801 - reads like the SQL function it is
    """The database server's current UTC time, microseconds included."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now)
def _default(element: db_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "mysql")
@compiles(db_now, "mariadb")
def _mysql(element: db_now, compiler: Any, **kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"


@compiles(db_now, "sqlite")
def _sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    # %f is "SS.mmm"; three zeros make the six-digit form SQLAlchemy stores and compares
    return "strftime('%Y-%m-%d %H:%M:%f000', 'now')"


def now(session: Session) -> datetime:
    """The database's current time as an aware UTC datetime (one round trip)."""
    value = session.execute(select(db_now())).scalar_one()
    if isinstance(value, str):  # defensive: a driver that hands back text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
