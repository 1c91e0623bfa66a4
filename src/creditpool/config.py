"""Configuration, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///creditpool.db"


@dataclass(frozen=True)
class Config:
    """What the service needs to know about its surroundings."""

    database_url: str = DEFAULT_DATABASE_URL

    @classmethod
    def from_environment(cls) -> Config:
        """Return the configuration the CREDITPOOL_* variables describe."""
        return cls(database_url=os.environ.get("CREDITPOOL_DATABASE_URL", DEFAULT_DATABASE_URL))
