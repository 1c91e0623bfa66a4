"""Secrets of the installation: made once, then the same for every process and restart."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, delete

from creditpool.storage.database import create_database_engine
from creditpool.storage.instance import instance_secret
from creditpool.storage.schema import InstanceSecret


def test_a_secret_is_made_once_and_then_read_back(engine: Engine) -> None:
    name = f"test-{uuid.uuid4().hex[:8]}"
    try:
        made = instance_secret(engine, name)
        # Another process (another engine on the same database) reads the same secret.
        other = create_database_engine(engine.url.render_as_string(hide_password=False))
        try:
            assert instance_secret(other, name) == made
        finally:
            other.dispose()
        assert len(made) >= 43  # 256 bits, url-safe
        assert instance_secret(engine, f"{name}-b") != made
    finally:
        with engine.begin() as connection:
            connection.execute(delete(InstanceSecret).where(InstanceSecret.name.like(f"{name}%")))
