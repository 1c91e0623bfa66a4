"""Secrets of this installation, made once and kept in the database."""

from __future__ import annotations

import secrets

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from creditpool.storage.schema import InstanceSecret


def instance_secret(engine: Engine, name: str) -> str:
    """Return the secret called `name`, making it on first use.

    Two processes starting together may both try to make it: the primary key lets one win and
    the other reads the winner's.
    """
    with Session(engine) as session:
        found = session.scalar(select(InstanceSecret.value).where(InstanceSecret.name == name))
        if found is not None:
            return found
        session.add(InstanceSecret(name=name, value=secrets.token_urlsafe(32)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
        return session.scalars(
            select(InstanceSecret.value).where(InstanceSecret.name == name)
        ).one()
