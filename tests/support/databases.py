"""Copies of a migrated SQLite database, for tests that need a database file of their own.

Migrating a fresh file runs every Alembic migration (seconds on a busy machine); copying one
migrated file takes a millisecond. The copy is made with SQLite's backup, which copies the
pages as SQLite sees them, committed log included, whatever the journal mode.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def copy_database(template: Path, destination: Path) -> str:
    """Copy the SQLite database `template` to `destination`; return the copy's URL."""
    with (
        closing(sqlite3.connect(template)) as source,
        closing(sqlite3.connect(destination)) as target,
    ):
        source.backup(target)
    return f"sqlite:///{destination}"
