"""Every key the installation has issued, operator keys and org API keys together, for the
operator's command line: listed (never a secret) and revoked by id alone.

An operator key's id starts `opk_`, an org key's `key_`; ids are unique across orgs, so an org
key is found without naming its org.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from creditpool.domain.errors import NotFound
from creditpool.services import operators
from creditpool.services.lookups import load_org
from creditpool.services.transactions import run_write
from creditpool.storage.schema import ApiKey
from creditpool.storage.unit_of_work import UnitOfWork

PAGE = 500  # org keys read at a time


class KeyKind(StrEnum):
    """Which powers a key carries."""

    OPERATOR = "operator"
    ORG = "org"


@dataclass(frozen=True)
class KeyListing:
    """A key as listed: its kind, its org and scopes (an org key's), never the secret."""

    kind: KeyKind
    id: str
    name: str
    org_id: str | None
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _org_listing(key: ApiKey) -> KeyListing:
    return KeyListing(
        KeyKind.ORG,
        key.id,
        key.name,
        key.org_id,
        tuple(key.scopes),
        key.created_at,
        key.last_used_at,
        key.revoked_at,
    )


def list_keys(
    uow: UnitOfWork, *, kind: KeyKind | None = None, org_id: str | None = None
) -> Iterator[KeyListing]:
    """Yield the keys, revoked ones too: operator keys, then org keys by id (those of one
    org with `org_id`, which lists no operator key), read a page at a time."""
    if org_id is not None:
        with uow:
            load_org(uow, org_id)
    if kind in (None, KeyKind.OPERATOR) and org_id is None:
        for key in operators.list_operator_keys(uow):
            yield KeyListing(
                KeyKind.OPERATOR,
                key.id,
                key.name,
                None,
                (),
                key.created_at,
                key.last_used_at,
                key.revoked_at,
            )
    if kind not in (None, KeyKind.ORG):
        return
    after = ""
    while True:
        with uow:
            query = select(ApiKey).where(ApiKey.id > after).order_by(ApiKey.id).limit(PAGE)
            if org_id is not None:
                query = query.where(ApiKey.org_id == org_id)
            page = [_org_listing(key) for key in uow.session.scalars(query)]
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].id


def revoke_key(uow: UnitOfWork, key_id: str) -> KeyListing:
    """Stop a key of either kind working at once; revoking it again changes nothing.
    NotFound for an unknown id."""
    if key_id.startswith("opk_"):
        key = operators.revoke_operator_key(uow, key_id)
        return KeyListing(
            KeyKind.OPERATOR,
            key.id,
            key.name,
            None,
            (),
            key.created_at,
            key.last_used_at,
            key.revoked_at,
        )

    def apply() -> KeyListing:
        key = uow.session.scalars(select(ApiKey).where(ApiKey.id == key_id)).first()
        if key is None:
            raise NotFound(f"no key {key_id}")
        key.revoked_at = key.revoked_at or uow.now
        return _org_listing(key)

    return run_write(uow, apply)
