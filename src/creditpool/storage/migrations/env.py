"""Alembic environment: runs migrations on the engine creditpool would use."""

from __future__ import annotations

from alembic import context

from creditpool.storage.database import create_database_engine
from creditpool.storage.schema import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations in one transaction on the configured database."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_database_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
