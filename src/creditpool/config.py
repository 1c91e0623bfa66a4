"""Configuration, read from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///creditpool.db"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Config:
    """What the service needs to know about its surroundings."""

    database_url: str = DEFAULT_DATABASE_URL
    public_url: str = DEFAULT_PUBLIC_URL  # where people reach the pages: invite links use it
    smtp_url: str | None = None  # smtp://user:password@host:port, or smtps:// for TLS
    mail_from: str = "creditpool <creditpool@localhost>"
    operator_key: str | None = None  # accepted as an operator key when set
    secret_key: str | None = None  # signs web sessions; else one made once, kept in the database

    @classmethod
    def from_environment(cls) -> Config:
        """Return the configuration the CREDITPOOL_* variables describe."""
        env = os.environ
        return cls(
            database_url=env.get("CREDITPOOL_DATABASE_URL", DEFAULT_DATABASE_URL),
            public_url=env.get("CREDITPOOL_PUBLIC_URL", DEFAULT_PUBLIC_URL).rstrip("/"),
            smtp_url=env.get("CREDITPOOL_SMTP_URL") or None,
            mail_from=env.get("CREDITPOOL_MAIL_FROM", cls.mail_from),
            operator_key=env.get("CREDITPOOL_OPERATOR_KEY") or None,
            secret_key=env.get("CREDITPOOL_SECRET_KEY") or None,
        )
