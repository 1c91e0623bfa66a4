"""Identity and access: tokens and keys, who the caller is, and what it may do here.

Secrets are random (160 bits), shown once, and stored only as SHA-256 hashes: they carry enough
entropy that a slow hash adds nothing, while passwords (chosen by people) use Argon2. Each
secret names the row it belongs to, so a lookup is by primary key and a comparison in constant
time, and an org's key is found inside its own org:

    personal token   cpt.<token id>.<secret>
    org API key      cpk.<org id>.<key id>.<secret>
    operator key     cpo.<key id>.<secret>

`authorize` applies domain/roles.py's table in one place: a stranger to the org gets NotFound,
a member whose role falls short gets Forbidden. Rights flow down a family of orgs: the owner
and managers of an ancestor act in the org as a manager does (a Grant with role manager and no
member id), never up: services/family_rights.py finds that inherited role, and this module
applies the roles table to it. The caller's own standing and the org's parent come in the one
query that finds the caller; the ancestors are read by a second query only when that standing
falls short and the org has a parent, so an org at the top and an org API key cost nothing more.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from creditpool.domain.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from creditpool.domain.model import MemberStatus, Role
from creditpool.domain.roles import (
    KNOWN_SCOPES,
    Permission,
    may_grant,
    role_allows,
    scopes_allow,
)
from creditpool.domain.text import clean_name
from creditpool.services import family_rights, periods
from creditpool.services.lookups import load_org, settles_at
from creditpool.services.rate_limits import FailedPasswords
from creditpool.services.transactions import run_write
from creditpool.services.users import authenticate
from creditpool.services.views import OrgView
from creditpool.storage.ids import digest_secret, new_id, new_secret, secret_matches
from creditpool.storage.schema import (
    ApiKey,
    Member,
    OperatorKey,
    Org,
    PersonalToken,
    User,
    table_of,
)
from creditpool.storage.unit_of_work import UnitOfWork

# Writing last_used_at on every request would make every read a write; once a minute is enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A personal token asked to expire lives at least a minute and at most a year.
MIN_TOKEN_LIFETIME = timedelta(seconds=60)
MAX_TOKEN_LIFETIME = timedelta(days=365)


@dataclass(frozen=True)
class IssuedSecret:
    """A new token or key: its id, and the secret, shown this once."""

    id: str
    secret: str


@dataclass(frozen=True)
class IssuedToken:
    """A new personal token: its id, the secret (shown this once), name and expiry."""

    id: str
    secret: str
    name: str
    expires_at: datetime | None


@dataclass(frozen=True)
class PersonalTokenView:
    """A personal token as listed: never the secret."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class ApiKeyView:
    """An org API key as listed: never the secret."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Principal:
    """The caller of a request, once its bearer token is known."""

    actor: str  # how the ledger names it: "user:<id>", "key:<id>", "operator-key:<id>"
    user_id: str | None = None
    operator: bool = False
    org_id: str | None = None  # an org API key's org
    scopes: frozenset[str] = field(default_factory=frozenset)


def _shown_once(what: str) -> AlreadyExists:
    return AlreadyExists(
        f"this idempotency key already made {what}; its secret was shown once and is not kept"
    )


def issue_personal_token(
    uow: UnitOfWork,
    *,
    email: str,
    password: str,
    name: str = "",
    expires_in: timedelta | None = None,
    idempotency_key: str | None = None,
    password_limit: FailedPasswords | None = None,
) -> IssuedToken:
    """Return a new bearer token for the user whose e-mail and password these are.

    `password_limit` locks an address out after too many failed passwords (users.authenticate).

    `name` says what the token is for (empty: unnamed); `expires_in`, between a minute and a
    year, makes it stop working by itself (None: it works until revoked).
    """
    name = clean_name(name, what="a token's name") if name.strip() else ""
    if expires_in is not None and not (MIN_TOKEN_LIFETIME <= expires_in <= MAX_TOKEN_LIFETIME):
        raise InvalidInput(
            f"expires_in is {MIN_TOKEN_LIFETIME.total_seconds():.0f} to "
            f"{MAX_TOKEN_LIFETIME.total_seconds():.0f} seconds"
        )
    user = authenticate(uow, email=email, password=password, password_limit=password_limit)

    def apply() -> IssuedToken:
        token_id, secret = new_id("tok"), new_secret()
        expires_at = None if expires_in is None else uow.now + expires_in
        uow.session.add(
            PersonalToken(
                id=token_id,
                user_id=user.id,
                name=name,
                secret_hash=digest_secret(secret),
                created_at=uow.now,
                expires_at=expires_at,
            )
        )
        return IssuedToken(token_id, f"cpt.{token_id}.{secret}", name, expires_at)

    return run_write(
        uow,
        apply,
        org_id="",
        actor=f"user:{user.id}",
        key=idempotency_key,
        operation="issue_personal_token",
        arguments={
            "name": name,
            "expires_in": None if expires_in is None else expires_in.total_seconds(),
        },
        result_type=IssuedToken,
        replay_as=_shown_once("a token"),
    )


def list_personal_tokens(
    uow: UnitOfWork, user_id: str, *, after: str | None = None, limit: int = 50
) -> list[PersonalTokenView]:
    """Return the user's live tokens (neither revoked nor expired) by id, without secrets."""
    with uow:
        query = (
            select(PersonalToken)
            .where(
                PersonalToken.user_id == user_id,
                PersonalToken.revoked_at.is_(None),
                or_(PersonalToken.expires_at.is_(None), PersonalToken.expires_at > uow.now),
            )
            .order_by(PersonalToken.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(PersonalToken.id > after)
        return [
            PersonalTokenView(
                token.id, token.name, token.created_at, token.last_used_at, token.expires_at
            )
            for token in uow.session.scalars(query)
        ]


def revoke_personal_token(uow: UnitOfWork, *, user_id: str, token_id: str) -> None:
    """Stop one of the user's tokens working at once."""

    def apply() -> None:
        token = uow.session.get(PersonalToken, token_id)
        if token is None or token.user_id != user_id:
            raise NotFound(f"no token {token_id}")
        token.revoked_at = token.revoked_at or uow.now

    run_write(uow, apply)


def create_api_key(
    uow: UnitOfWork,
    org_id: str,
    *,
    name: str,
    scopes: Sequence[str],
    actor: str,
    idempotency_key: str | None = None,
) -> IssuedSecret:
    """Give the org a key for the vendor's product; the secret is returned this once."""
    name = clean_name(name)
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown or not scopes:
        raise InvalidInput(f"scopes are a non-empty list of {sorted(KNOWN_SCOPES)}: {unknown}")

    def apply() -> IssuedSecret:
        load_org(uow, org_id)
        key_id, secret = new_id("key"), new_secret()
        uow.session.add(
            ApiKey(
                org_id=org_id,
                id=key_id,
                name=name,
                scopes=sorted(set(scopes)),
                secret_hash=digest_secret(secret),
                created_at=uow.now,
            )
        )
        return IssuedSecret(key_id, f"cpk.{org_id}.{key_id}.{secret}")

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="create_api_key",
        arguments={"name": name, "scopes": sorted(set(scopes))},
        result_type=IssuedSecret,
        replay_as=_shown_once("a key"),
    )


def list_api_keys(
    uow: UnitOfWork,
    org_id: str,
    *,
    after: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[ApiKeyView]:
    """Return the org's live keys, oldest (or newest) first, without their secrets; a page of
    them with `after` (the last id of the previous page) and `limit`."""
    with uow:
        load_org(uow, org_id)
        query = select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
        query = query.order_by(ApiKey.id.desc() if newest_first else ApiKey.id)
        if after is not None:
            query = query.where(ApiKey.id < after if newest_first else ApiKey.id > after)
        if limit is not None:
            query = query.limit(limit)
        return [
            ApiKeyView(key.id, key.name, list(key.scopes), key.created_at, key.last_used_at)
            for key in uow.session.scalars(query)
        ]


def count_api_keys(uow: UnitOfWork, org_id: str) -> int:
    """Return how many live keys the org has."""
    with uow:
        return (
            uow.session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
            )
            or 0
        )


def revoke_api_key(uow: UnitOfWork, org_id: str, key_id: str) -> None:
    """Stop an org key working at once."""

    def apply() -> None:
        key = uow.session.get(ApiKey, (org_id, key_id))
        if key is None:
            raise NotFound(f"no API key {key_id} in this org")
        key.revoked_at = key.revoked_at or uow.now

    run_write(uow, apply)


def identify(uow: UnitOfWork, bearer: str, *, configured_operator_key: str | None) -> Principal:
    """Return who holds this bearer token; Unauthenticated for an unknown or revoked one."""
    with uow.preparing():
        principal, _ = _caller(uow, bearer, None, configured_operator_key)
    return principal


def authorize_bearer(
    uow: UnitOfWork,
    bearer: str,
    org_id: str,
    permission: Permission,
    *,
    own_member_id: str | None = None,
    configured_operator_key: str | None,
) -> Grant:
    """Identify the holder of a bearer token and authorize it on an org (see `authorize` for the
    rules): one query, plus a second only for a user whose own standing falls short in an org
    with a parent (its ancestors); an org whose period boundary has passed is settled first."""
    with uow.preparing():
        principal, standing = _caller(uow, bearer, org_id, configured_operator_key)
        assert standing is not None
        grant = _grant(uow, principal, standing, org_id, permission, own_member_id)
        due = periods.is_due(standing.settles_at, uow.now)
    if due:
        _settle_period(uow, org_id)
    return grant


def _settle_period(uow: UnitOfWork, org_id: str) -> None:
    """Settle the org's passed period boundary before the request's work, reads included
    (services/periods.py): in its own short transaction, which a request's joins and commits
    (its work then runs in the next one)."""
    periods.settle_due(uow, org_id)


@dataclass(frozen=True)
class _Standing:
    """What the caller's query found about the org: whether it exists, the caller's membership,
    and the org's parent (None at the top, or when the caller is not a user)."""

    org_found: bool
    member_id: str | None = None
    role: str | None = None
    parent_id: str | None = None
    # When the org has something to settle (a period boundary or a lot's expiry; None:
    # nothing ahead), read with the org: free to check.
    settles_at: datetime | None = None


def _caller(
    uow: UnitOfWork, bearer: str, org_id: str | None, configured_operator_key: str | None
) -> tuple[Principal, _Standing | None]:
    """Find the bearer token's holder and, with an org, its standing there: one query, in the
    transaction the request's work then joins (opened by the caller with `uow.preparing()`). A
    token last used over a minute ago is marked used just before that transaction commits."""
    refused = Unauthenticated("the bearer token is unknown or revoked")
    configured = bool(configured_operator_key) and hmac.compare_digest(
        bearer.encode(), (configured_operator_key or "").encode()
    )
    if not configured and ("\x00" in bearer or not bearer.isascii()):
        raise refused
    parts = bearer.split(".")
    if configured:
        principal = Principal(actor="operator-key:configured", operator=True)
        if org_id is None:
            return principal, None
        found = uow.execute_first(
            select(Org.id, settles_at(_orgs)).where(Org.id == org_id)
        ).one_or_none()
        if found is None:
            return principal, _Standing(False)
        return principal, _Standing(True, settles_at=found.settles_at)
    if parts[0] == "cpt" and len(parts) == 3:
        return _personal(uow, parts[1], parts[2], org_id, refused)
    if parts[0] == "cpk" and len(parts) == 4:
        return _org_key(uow, parts[1], parts[2], parts[3], org_id, refused)
    if parts[0] == "cpo" and len(parts) == 3:
        return _operator_key(uow, parts[1], parts[2], org_id, refused)
    raise refused


def _mark_used(
    uow: UnitOfWork, table: Any, key: dict[str, str], last_used_at: datetime | None
) -> None:
    now = uow.now
    if last_used_at is not None and now - last_used_at < LAST_USED_RESOLUTION:
        return
    column = table.last_used_at
    statement = (
        update(table)
        .where(*(getattr(table, name) == value for name, value in key.items()))
        .where(or_(column.is_(None), column <= now - LAST_USED_RESOLUTION))
        .values(last_used_at=now)
    )

    def mark(session: Session) -> None:
        session.execute(statement)

    uow.before_commit(mark)


# The caller's lookups, built once (each request only binds its values): one per kind of
# secret, alone or with the caller's standing in the org the request is about.
_tokens, _users, _orgs, _members, _api_keys, _operator_keys = (
    table_of(model) for model in (PersonalToken, User, Org, Member, ApiKey, OperatorKey)
)
_TOKEN = (
    select(
        _tokens.c.user_id,
        _tokens.c.secret_hash,
        _tokens.c.revoked_at,
        _tokens.c.expires_at,
        _tokens.c.last_used_at,
        _users.c.is_operator,
    )
    .join(_users, _users.c.id == _tokens.c.user_id)
    .where(_tokens.c.id == bindparam("token"))
)
_TOKEN_IN_ORG = (
    _TOKEN.add_columns(
        _orgs.c.id.label("org_found"),
        _orgs.c.parent_id,
        settles_at(_orgs),
        _members.c.id.label("member_id"),
        _members.c.role,
    )
    .outerjoin(_orgs, _orgs.c.id == bindparam("org"))
    .outerjoin(
        _members,
        (_members.c.org_id == _orgs.c.id)
        & (_members.c.user_id == _tokens.c.user_id)
        & (_members.c.status == MemberStatus.ACTIVE),
    )
)
_API_KEY = select(
    _api_keys.c.secret_hash, _api_keys.c.revoked_at, _api_keys.c.scopes, _api_keys.c.last_used_at
).where(_api_keys.c.org_id == bindparam("key_org"), _api_keys.c.id == bindparam("key"))
_OPERATOR_KEY = select(
    _operator_keys.c.secret_hash, _operator_keys.c.revoked_at, _operator_keys.c.last_used_at
).where(_operator_keys.c.id == bindparam("key"))
_OPERATOR_KEY_IN_ORG = _OPERATOR_KEY.add_columns(
    _orgs.c.id.label("org_found"), settles_at(_orgs)
).outerjoin(_orgs, _orgs.c.id == bindparam("org"))
# An org key with its own org's period boundary (the one org it may act on).
_API_KEY_IN_ORG = _API_KEY.add_columns(settles_at(_orgs)).outerjoin(
    _orgs, _orgs.c.id == _api_keys.c.org_id
)


def _personal(
    uow: UnitOfWork, token_id: str, secret: str, org_id: str | None, refused: Unauthenticated
) -> tuple[Principal, _Standing | None]:
    query = _TOKEN if org_id is None else _TOKEN_IN_ORG
    token = uow.execute_first(query, {"token": token_id, "org": org_id}).one_or_none()
    if token is None:
        raise refused
    if token.revoked_at is not None or not secret_matches(secret, token.secret_hash):
        raise refused
    if token.expires_at is not None and token.expires_at <= uow.now:
        raise refused  # expired: refused like a revoked token
    _mark_used(uow, PersonalToken, {"id": token_id}, token.last_used_at)
    principal = Principal(
        actor=f"user:{token.user_id}", user_id=token.user_id, operator=token.is_operator
    )
    if org_id is None:
        return principal, None
    return principal, _Standing(
        token.org_found is not None,
        token.member_id,
        token.role,
        token.parent_id,
        token.settles_at,
    )


def _org_key(
    uow: UnitOfWork,
    key_org: str,
    key_id: str,
    secret: str,
    org_id: str | None,
    refused: Unauthenticated,
) -> tuple[Principal, _Standing | None]:
    query = _API_KEY if org_id is None else _API_KEY_IN_ORG
    key = uow.execute_first(query, {"key_org": key_org, "key": key_id}).one_or_none()
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        raise refused
    _mark_used(uow, ApiKey, {"org_id": key_org, "id": key_id}, key.last_used_at)
    principal = Principal(actor=f"key:{key_id}", org_id=key_org, scopes=frozenset(key.scopes))
    # A key's org exists (the key names it); any other org is one the key knows nothing of.
    if org_id is None:
        return principal, None
    if org_id != key_org:
        return principal, _Standing(False)
    return principal, _Standing(True, settles_at=key.settles_at)


def _operator_key(
    uow: UnitOfWork, key_id: str, secret: str, org_id: str | None, refused: Unauthenticated
) -> tuple[Principal, _Standing | None]:
    query = _OPERATOR_KEY if org_id is None else _OPERATOR_KEY_IN_ORG
    key = uow.execute_first(query, {"key": key_id, "org": org_id}).one_or_none()
    if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
        raise refused
    _mark_used(uow, OperatorKey, {"id": key_id}, key.last_used_at)
    principal = Principal(actor=f"operator-key:{key_id}", operator=True)
    if org_id is None:
        return principal, None
    return principal, _Standing(key.org_found is not None, settles_at=key.settles_at)


@dataclass(frozen=True)
class Grant:
    """A caller allowed to act on an org: how the ledger names it, and its membership if any."""

    actor: str
    member_id: str | None = None
    role: Role | None = None  # None: an operator, or an org API key (then `scopes` is set)
    scopes: frozenset[str] | None = None  # an org API key's scopes


def grants(grant: Grant, permission: Permission) -> bool:
    """Whether an authorized caller may also act under another permission of the same org."""
    if grant.scopes is not None:
        return scopes_allow(grant.scopes, permission)
    return grant.role is None or role_allows(grant.role, permission)


def check_may_grant(granter: Role | None, role: Role, *, doing: str) -> None:
    """Raise Forbidden unless a caller acting as `granter` (None: an operator) may give or take
    `role`, by domain/roles.py's `may_grant`; `doing` names the action for the refusal."""
    if not may_grant(granter, role):
        article = "an" if role is Role.OWNER else "a"
        raise Forbidden(f"only the owner or an operator may {doing} {article} {role}")


def standing_of(uow: UnitOfWork, org_id: str, actor: str) -> Grant | None:
    """Return what `actor` (as the ledger names a caller) may do in the org now, if it may
    still manage it (invite); None if it may not: a user removed or made a member (and no
    owner or manager of an ancestor), a user no longer an operator, a revoked operator key, an
    org API key. Runs in an open transaction.

    The configured operator key (`operator-key:configured`) is the installation's own and is
    taken to stand: the service cannot see the configuration.
    """
    kind, _, ident = actor.partition(":")
    if kind == "operator-key":
        if ident == "configured":
            return Grant(actor)
        key = uow.session.get(OperatorKey, ident)
        return Grant(actor) if key is not None and key.revoked_at is None else None
    user = uow.session.get(User, ident) if kind == "user" else None
    if user is None:
        return None
    if user.is_operator:
        return Grant(actor)
    membership = uow.session.execute(
        select(Member.id, Member.role).where(
            Member.org_id == org_id,
            Member.user_id == user.id,
            Member.status == MemberStatus.ACTIVE,
        )
    ).one_or_none()
    if membership is not None and role_allows(Role(membership.role), Permission.MANAGE):
        return Grant(actor, membership.id, Role(membership.role))
    inherited = family_rights.role_from_ancestors_of(uow, user.id, org_id)
    if inherited is None or not role_allows(inherited, Permission.MANAGE):
        return None
    return Grant(actor, role=inherited)


def org_seen_by(org: OrgView, caller: Grant | Principal) -> OrgView:
    """Return the org as this caller may read it: the invite code only for who may manage the
    org, never for an org API key (which reads only what charging needs).

    A user's Principal stands for a user listing the orgs it owns or manages.
    """
    if isinstance(caller, Grant):
        shows = grants(caller, Permission.MANAGE)
    else:
        shows = caller.org_id is None or scopes_allow(caller.scopes, Permission.MANAGE)
    return org if shows else replace(org, invite_code=None)


def authorize(
    uow: UnitOfWork,
    principal: Principal,
    org_id: str,
    permission: Permission,
    *,
    own_member_id: str | None = None,
) -> Grant:
    """Allow or refuse an action on an org, by the roles table (domain/roles.py).

    `own_member_id` names the member a READ_OWN action is about: a member may read itself.
    Raises NotFound for a caller with no standing in the org (or an org that does not exist),
    Forbidden for one whose role does not allow the action.
    """
    with uow.preparing():
        query = select(Org.id, settles_at(_orgs)).where(Org.id == org_id)
        if principal.user_id is not None and not principal.operator:
            query = query.add_columns(Member.id, Member.role, Org.parent_id).outerjoin(
                Member,
                (Member.org_id == Org.id)
                & (Member.user_id == principal.user_id)
                & (Member.status == MemberStatus.ACTIVE),
            )
        row = uow.execute_first(query).one_or_none()
        if row is None:
            standing = _Standing(False)
        else:
            member_id, role, parent_id = (*row[2:], None, None, None)[:3]
            standing = _Standing(True, member_id, role, parent_id, row.settles_at)
        grant = _grant(uow, principal, standing, org_id, permission, own_member_id)
        due = periods.is_due(standing.settles_at, uow.now)
    if due:
        _settle_period(uow, org_id)
    return grant


def _grant(
    uow: UnitOfWork,
    principal: Principal,
    standing: _Standing,
    org_id: str,
    permission: Permission,
    own_member_id: str | None,
) -> Grant:
    """Apply the roles table to a caller's standing in an org (and, when that falls short, in
    the org's ancestors, by services/family_rights.py: the second query, in the open
    transaction)."""
    if not standing.org_found:
        raise NotFound(f"no org {org_id}")
    if principal.operator:
        return Grant(principal.actor)
    if principal.org_id is not None:
        if principal.org_id != org_id:
            raise NotFound(f"no org {org_id}")  # an org key knows only its own org
        if not scopes_allow(principal.scopes, permission):
            raise Forbidden("this key's scopes do not allow that")
        return Grant(principal.actor, scopes=principal.scopes)
    own = None if standing.member_id is None or standing.role is None else Role(standing.role)
    if permission is Permission.READ_OWN and own_member_id not in (None, standing.member_id):
        # Reading another member's wallet is reading the org.
        permission = Permission.READ
    if own is not None and role_allows(own, permission):
        return Grant(principal.actor, standing.member_id, own)
    inherited = None
    if principal.user_id is not None:
        inherited = family_rights.role_from_ancestors(uow, principal.user_id, standing.parent_id)
    if inherited is not None and role_allows(inherited, permission):
        # Not a member here: no member id, so nothing "of one's own" comes with it.
        return Grant(principal.actor, role=inherited)
    if own is None and inherited is None:
        raise NotFound(f"no org {org_id}")
    raise Forbidden(f"a {inherited or own} may not do that")
