"""Endpoint secrets, kept encrypted: the worker needs each in clear to sign, so unlike tokens
and keys they cannot be stored as hashes.

They are encrypted (Fernet: AES-128-CBC with HMAC-SHA256) under a key derived from a secret
of this installation (the `instance_secrets` row `webhooks`, made on first use), so a copy of
the `webhook_endpoints` table alone reveals none of them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from creditpool.storage.schema import InstanceSecret

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
_KEY_NAME = "webhooks"
_SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes


def new_endpoint_secret() -> str:
    """Return a new signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _instance_key(session: Session) -> str:
    """Return the installation's secret for endpoint secrets, making it on first use (in a
    savepoint: two transactions making it at once let one win, the other reads it)."""
    query = select(InstanceSecret.value).where(InstanceSecret.name == _KEY_NAME)
    found = session.scalar(query)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.add(InstanceSecret(name=_KEY_NAME, value=secrets.token_urlsafe(32)))
    except IntegrityError:
        pass
    return session.scalars(query).one()


def _fernet(session: Session) -> Fernet:
    digest = hashlib.sha256(
        b"creditpool webhook endpoint secrets\x00" + _instance_key(session).encode()
    )
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def encrypt(session: Session, secret: str) -> str:
    """Return what is stored of an endpoint's secret."""
    return _fernet(session).encrypt(secret.encode()).decode()


def decrypt(session: Session, stored: str) -> str:
    """Return an endpoint's secret from what is stored of it."""
    return _fernet(session).decrypt(stored.encode()).decode()
