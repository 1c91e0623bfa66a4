"""Alembic environment: runs migrations on the engine creditpool would use.

On SQLite, batch mode changes a table by copying it, dropping it and renaming the copy: with
foreign keys enforced, dropping a table that other rows point at fails (accounts, in 0010).
So foreign keys are off while migrating (a PRAGMA that only takes effect outside a
transaction, hence at connect), and every reference is checked before the migration commits.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, event

from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations in one transaction on the configured database."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_database_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        event.listen(engine, "connect", _foreign_keys_off)  # after the engine's own: it wins
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_metadata, render_as_batch=sqlite
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    _check_foreign_keys(connection)
    finally:
        engine.dispose()  # a refused migration too closes its connections


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA foreign_keys=OFF")


def _check_foreign_keys(connection: Connection) -> None:
    """Refuse to commit a migration that leaves a row pointing nowhere."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration leaves {len(broken)} broken references: {broken[:5]}")


run_migrations_online()
