"""Alembic runtime environment: runs migrations on the URL or connection the caller gives."""

from __future__ import annotations

from alembic import context

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    # SQLite: batch migrations rebuild a table (create a copy, DROP the original, rename).
    # With foreign keys on, that DROP would fail on RESTRICT children (users, playbooks...)
    # or, worse, CASCADE-delete them (jobs -> job_logs). So keys are off while migrating
    # and checked afterwards. Legacy ALTER TABLE keeps SQLite from re-checking triggers
    # that name the table being rebuilt (audit_logs_no_update reads `users`) while it is
    # briefly gone. The PRAGMAs only work outside a transaction: a connection handed in
    # already inside one is the caller's to prepare.
    toggle_fks = sqlite and not connection.in_transaction()
    if toggle_fks:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.exec_driver_sql("PRAGMA legacy_alter_table=ON")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        if toggle_fks:
            _check_foreign_keys(connection)
    finally:
        if toggle_fks:
            connection.rollback()
            connection.exec_driver_sql("PRAGMA legacy_alter_table=OFF")
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _check_foreign_keys(connection) -> None:  # type: ignore[no-untyped-def]
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise RuntimeError(f"migration left rows with broken foreign keys in {tables}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
