"""Apply Alembic migrations from inside the installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from creditpool.storage.database import normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    """Return an Alembic configuration for this database, with no alembic.ini needed."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is ConfigParser-based: a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema of `database_url` up to `revision` (the newest by default)."""
    command.upgrade(alembic_config(database_url), revision)
