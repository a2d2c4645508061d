"""Pin every table to InnoDB, utf8mb4 and the utf8mb4_bin collation on MySQL/MariaDB.

Revisions 0001-0006 named no engine, charset or collation, so tables took the server's
defaults: on a server still at latin1 (MariaDB's stock default) an emoji in a job's output
could not be stored, and on any `_ci` default, unique names were case-insensitive on MySQL
while SQLite (BINARY) compares them byte for byte. This revision:

- sets the database's default to utf8mb4 / utf8mb4_bin, so tables created by later revisions
  get the same unless they say otherwise;
- converts every table there is (`alembic_version` included) with
  `ALTER TABLE ... ENGINE=InnoDB, CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`
  (one rebuild per table; rows keep their characters, latin1 text included).

utf8mb4_bin for every column, on purpose (docs/database.md, "Charsets and collations"):
uniqueness and equality are then the same as SQLite's for names, keys and ids; ordering is
by code point on both engines; and no two columns can meet with "Illegal mix of collations".
Where Playbot wants case-insensitive matching (host names) it says so in the query
(`lower()`), the same on both engines. One difference stays: MySQL's and MariaDB's
utf8mb4_bin ignore trailing spaces (PAD SPACE); every name Playbot stores is stripped first.

Downgrade keeps utf8mb4 (going back to a charset that cannot hold the data would lose it)
and returns to utf8mb4_unicode_ci, the collation earlier revisions had on the test servers;
it fails on a duplicate key if two names now differ only in case, rather than dropping one.

SQLite: nothing to do (one engine, UTF-8, BINARY comparison).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"
PREVIOUS_COLLATION = "utf8mb4_unicode_ci"


def upgrade() -> None:
    _pin(COLLATION)


def downgrade() -> None:
    _pin(PREVIOUS_COLLATION)


def _pin(collation: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    op.execute(f"ALTER DATABASE CHARACTER SET {CHARSET} COLLATE {collation}")
    for table in _tables(bind):
        texts = _text_columns(bind, table)
        op.execute(f"ALTER TABLE `{table}` ENGINE=InnoDB, "
                   f"CONVERT TO CHARACTER SET {CHARSET} COLLATE {collation}")
        # CONVERT TO widens TEXT to MEDIUMTEXT when the charset grows (latin1 -> utf8mb4) to
        # keep its length in characters; the models say TEXT, so it goes back to TEXT. Text
        # that no longer fits in TEXT's 65,535 bytes stops the migration (strict mode) with
        # MySQL's "Data too long" rather than being cut.
        for column, (column_type, nullable) in _text_columns(bind, table).items():
            if column in texts and texts[column][0] != column_type:
                op.execute(f"ALTER TABLE `{table}` MODIFY `{column}` {texts[column][0]} "
                           f"CHARACTER SET {CHARSET} COLLATE {collation} "
                           f"{'NULL' if nullable else 'NOT NULL'}")


def _tables(bind: sa.engine.Connection) -> list[str]:
    """Every base table of the database, whichever revisions made them."""
    return list(bind.execute(sa.text(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
    )).scalars())


def _text_columns(bind: sa.engine.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """The table's TINYTEXT/TEXT/MEDIUMTEXT columns: name -> (type, nullable)."""
    rows = bind.execute(sa.text(
        "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = :t "
        "AND data_type IN ('tinytext', 'text', 'mediumtext')"), {"t": table})
    return {name: (kind.upper(), nullable == "YES") for name, kind, nullable in rows}
