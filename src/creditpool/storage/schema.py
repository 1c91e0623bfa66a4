"""The relational schema. Alembic migrations create it; this module describes it.

Tenant-keyed: every table that belongs to an org carries `org_id`, leads its primary key and
every unique key with it, and its foreign keys inside the org include `org_id`, so one tenant
can never reach another's rows and the schema can be distributed by `org_id`. Users are global.

The ledger's invariants hold in the database as well as in code: transfer amounts are positive,
pools and wallets never go below zero, a wallet's held credits never exceed its balance.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from creditpool.storage.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(40)
ACCOUNT_ID = String(48)
Micros = BigInteger


class Base(DeclarativeBase):
    """Declarative base with the naming convention migrations rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, str: String(200), int: BigInteger}


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class: for statements built once, bound per request, that
    read and write rows without the ORM's per-object work."""
    return cast(Table, model.__table__)


class User(Base):
    """A person with a login; may belong to several orgs. Global, not tenant-keyed."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # stored lower-cased
    name: Mapped[str]
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_operator: Mapped[bool] = mapped_column(default=False)
    # Set once the person followed the confirmation link mailed to `email`.
    email_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Org(Base):
    """One customer and its settings, seat counts and metering clock."""

    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str]
    paused: Mapped[bool] = mapped_column(default=False)
    invite_code: Mapped[str] = mapped_column(String(64), unique=True)
    returnable: Mapped[bool] = mapped_column(default=True)
    auto_enabled: Mapped[bool] = mapped_column(default=False)
    auto_bundle: Mapped[int] = mapped_column(Micros)
    auto_max_per_member: Mapped[int] = mapped_column(Micros)
    rate_licensed: Mapped[int] = mapped_column(Micros, default=0)
    rate_unlicensed: Mapped[int] = mapped_column(Micros, default=0)
    rate_external: Mapped[int] = mapped_column(Micros, default=0)
    # Active seats by kind; the burn rate is derived from these, the rates and `paused`.
    licensed_seats: Mapped[int] = mapped_column(Integer, default=0)
    unlicensed_seats: Mapped[int] = mapped_column(Integer, default=0)
    external_seats: Mapped[int] = mapped_column(Integer, default=0)
    # The instant since which the pool's current burn rate applies, unposted.
    metered_since: Mapped[datetime]
    created_at: Mapped[datetime]
    # Webhooks and alerts (migration 0006). The event types some live endpoint subscribes to,
    # space-separated and kept as endpoints change: every write reads the org row already, so
    # one that emits nobody's event costs no query.
    webhook_events: Mapped[str] = mapped_column(String(500), default="")
    # Alert thresholds (null: off): the pool's available below this, or running out within
    # this many days. `alert_low` and `alert_depleted` say a crossing has been announced, so
    # it is announced once until the pool is above again.
    alert_low_balance: Mapped[int | None] = mapped_column(Micros)
    alert_days_left: Mapped[int | None] = mapped_column(Integer)
    alert_low: Mapped[bool] = mapped_column(default=False)
    alert_depleted: Mapped[bool] = mapped_column(default=False)
    # Pools inside pools (migration 0009). `parent_id` is null at the top; `root_id` names the
    # family's top org (the org itself at the top), a key that would keep a family on one node
    # of a distributed database; `depth` is 1 at the top, at most 3. `ancestor_paused` says
    # some ancestor is paused: the org then burns nothing either (its usage goes on).
    parent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("orgs.id"))
    root_id: Mapped[str] = mapped_column(ID)
    depth: Mapped[int] = mapped_column(Integer, default=1)
    ancestor_paused: Mapped[bool] = mapped_column(default=False)
    # Budgets per period (migration 0009). The time zone (IANA) of period boundaries; the
    # period of automatic allocation (null: the cap counts for ever) and whether what is left
    # of a period's automatic allotments goes back to the pool at its end. `period_started_at`
    # and `period_ends_at` bound the period the members' counters count in (null without a
    # period): a request that finds `period_ends_at` passed settles the boundary first.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    auto_period: Mapped[str | None] = mapped_column(String(8))
    auto_reclaim: Mapped[bool] = mapped_column(default=False)
    period_started_at: Mapped[datetime | None]
    period_ends_at: Mapped[datetime | None]
    # Lots (migration 0010). `sole_lot_id` names the org's one lot while it has exactly one and
    # that lot never expires, which is most orgs: a charge then knows the lot without reading
    # any (services/lots.py). `next_expiry_at` is the soonest expiry of a lot not yet posted
    # as expired: a request that finds it passed posts the expiry first.
    sole_lot_id: Mapped[str | None] = mapped_column(ID)
    next_expiry_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_orgs_parent_id", "parent_id"),
        # The worker's sweep of expiries passed reads only the orgs due.
        Index("ix_orgs_next_expiry_at", "next_expiry_at"),
        Index("ix_orgs_root_id", "root_id"),
        # The worker's sweep of boundaries passed reads only the orgs due, not every org.
        Index("ix_orgs_period_ends_at", "period_ends_at"),
        CheckConstraint("depth BETWEEN 1 AND 3", name="depth"),
        CheckConstraint("(parent_id IS NULL) = (depth = 1)", name="parent_at_depth"),
        CheckConstraint("auto_period IS NULL OR auto_period IN ('week', 'month')", name="period"),
        CheckConstraint(
            "(auto_period IS NULL) = (period_ends_at IS NULL)", name="period_has_boundary"
        ),
        CheckConstraint("auto_bundle > 0", name="bundle_positive"),
        CheckConstraint(
            "auto_max_per_member >= 0 AND auto_max_per_member % auto_bundle = 0",
            name="cap_multiple_of_bundle",
        ),
        CheckConstraint(
            "rate_licensed >= 0 AND rate_unlicensed >= 0 AND rate_external >= 0",
            name="rates_not_negative",
        ),
        CheckConstraint(
            "licensed_seats >= 0 AND unlicensed_seats >= 0 AND external_seats >= 0",
            name="seats_not_negative",
        ),
        CheckConstraint(
            "(alert_low_balance IS NULL OR alert_low_balance > 0)"
            " AND (alert_days_left IS NULL OR alert_days_left > 0)",
            name="alerts_positive",
        ),
    )


class Member(Base):
    """A user's membership in one org. Removing it keeps the row and its history."""

    __tablename__ = "members"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(16))
    seat: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # Running totals, each backed by the transfers (the audit checks them).
    allocated_total: Mapped[int] = mapped_column(Micros, default=0)
    auto_allocated_total: Mapped[int] = mapped_column(Micros, default=0)
    used_total: Mapped[int] = mapped_column(Micros, default=0)
    # Budgets per period (migration 0009): what the member received automatically since the
    # org's period began, and its `used_total` then (a period's usage spends its automatic
    # credits first, so what is left of them at the end is known without a query).
    auto_period_allocated: Mapped[int] = mapped_column(Micros, default=0)
    period_used_base: Mapped[int] = mapped_column(Micros, default=0)
    joined_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        Index("ix_members_org_id_status_role", "org_id", "status", "role"),
        CheckConstraint("role IN ('owner', 'manager', 'member')", name="role"),
        CheckConstraint("seat IN ('licensed', 'unlicensed', 'external')", name="seat"),
        CheckConstraint("status IN ('active', 'removed')", name="status"),
        CheckConstraint(
            "allocated_total >= 0 AND auto_allocated_total >= 0 AND used_total >= 0",
            name="totals_not_negative",
        ),
        CheckConstraint(
            "auto_period_allocated >= 0 AND period_used_base >= 0", name="period_not_negative"
        ),
    )


class Account(Base):
    """One account of an org's ledger: its pool, a member's wallet, or a system account.

    `balance` is credits in minus credits out. `held` is what open holds reserve in a wallet;
    a wallet can spend `balance - held`.
    """

    __tablename__ = "accounts"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ACCOUNT_ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    member_id: Mapped[str | None] = mapped_column(ID)
    balance: Mapped[int] = mapped_column(Micros, default=0)
    held: Mapped[int] = mapped_column(Micros, default=0)

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "member_id"], ["members.org_id", "members.id"]),
        UniqueConstraint("org_id", "member_id"),
        CheckConstraint(
            "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered', 'children', 'parent',"
            " 'expired')",
            name="kind",
        ),
        CheckConstraint("kind NOT IN ('pool', 'wallet') OR balance >= 0", name="not_overdrawn"),
        CheckConstraint("held >= 0 AND (held = 0 OR held <= balance)", name="held_covered"),
        CheckConstraint(
            "(kind = 'wallet' AND member_id IS NOT NULL)"
            " OR (kind <> 'wallet' AND member_id IS NULL)",
            name="wallet_has_member",
        ),
    )


class Lot(Base):
    """Credits that entered an org's pool together: a purchase, or a parent's lot carried down.

    Credits keep their lot wherever they go in the org; `LotBalance` says how much of it each
    pool and wallet holds. The counters say where the rest went: `metered` (seat burn), `moved`
    (to the org's children, less what came back, or back to its parent), `expired`; what is
    left of `amount` after those and the holdings was used.
    """

    __tablename__ = "lots"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    # The parent org's lot this one carries down (source "parent"), one lot per parent lot.
    parent_lot_id: Mapped[str | None] = mapped_column(ID)
    amount: Mapped[int] = mapped_column(Micros)
    priority: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    metered: Mapped[int] = mapped_column(Micros, default=0)
    moved: Mapped[int] = mapped_column(Micros, default=0)
    expired: Mapped[int] = mapped_column(Micros, default=0)
    # When its expiry was posted, and when `credits.expiring` was announced (null: not yet).
    expired_at: Mapped[datetime | None]
    warned_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "parent_lot_id"),
        Index("ix_lots_org_id_expires_at", "org_id", "expires_at"),
        CheckConstraint("source IN ('purchase', 'parent')", name="source"),
        CheckConstraint("(source = 'parent') = (parent_lot_id IS NOT NULL)", name="parent_lot"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority"),
        CheckConstraint(
            "amount >= 0 AND metered >= 0 AND expired >= 0 AND metered + moved + expired <= amount",
            name="counters",
        ),
    )


class LotBalance(Base):
    """What one lot holds in one pool or wallet; an account's balance is the sum over its
    lots, and its `held` the sum of theirs."""

    __tablename__ = "lot_balances"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ACCOUNT_ID, primary_key=True)
    lot_id: Mapped[str] = mapped_column(ID, primary_key=True)
    amount: Mapped[int] = mapped_column(Micros, default=0)
    held: Mapped[int] = mapped_column(Micros, default=0)

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "account_id"], ["accounts.org_id", "accounts.id"]),
        ForeignKeyConstraint(["org_id", "lot_id"], ["lots.org_id", "lots.id"]),
        Index("ix_lot_balances_org_id_lot_id", "org_id", "lot_id"),
        CheckConstraint("amount >= 0 AND held >= 0 AND held <= amount", name="covered"),
    )


class Transfer(Base):
    """One immutable movement of credits between two accounts of the same org."""

    __tablename__ = "transfers"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    batch_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(24))
    debit_account_id: Mapped[str] = mapped_column(ACCOUNT_ID)
    credit_account_id: Mapped[str] = mapped_column(ACCOUNT_ID)
    amount: Mapped[int] = mapped_column(Micros)
    member_id: Mapped[str | None] = mapped_column(ID)
    hold_id: Mapped[str | None] = mapped_column(ID)
    reference: Mapped[str | None]
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    actor: Mapped[str]
    created_at: Mapped[datetime]
    # Which lots it moved, in the order they were spent: [{"lot_id", "amount"}], summing to
    # `amount` (services/lots.py).
    lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "debit_account_id"], ["accounts.org_id", "accounts.id"]),
        ForeignKeyConstraint(["org_id", "credit_account_id"], ["accounts.org_id", "accounts.id"]),
        ForeignKeyConstraint(["org_id", "member_id"], ["members.org_id", "members.id"]),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="two_accounts"),
        Index("ix_transfers_org_id_member_id_id", "org_id", "member_id", "id"),
        Index("ix_transfers_org_id_batch_id", "org_id", "batch_id"),
    )


class PoolDay(Base):
    """The pool at the end of one UTC day that moved it (or as far as it is rolled up), from
    the transfers, so the pool's chart reads one row a day instead of every transfer."""

    __tablename__ = "pool_days"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    day: Mapped[datetime] = mapped_column(primary_key=True)  # its first instant, UTC
    last_at: Mapped[datetime]  # when the last batch of the day moved the pool
    balance: Mapped[int] = mapped_column(Micros)  # the posted balance after it
    # The earliest start and latest end of the seat burns posted that day, if any.
    burn_began: Mapped[datetime | None]
    burn_ended: Mapped[datetime | None]


class PoolRollup(Base):
    """How far an org's transfers are rolled up into pool days: through one transfer id (the
    later ones are read as they are), with the pool's posted balance after it."""

    __tablename__ = "pool_rollups"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    through_id: Mapped[str] = mapped_column(ID)  # "" before the first roll-up
    through_at: Mapped[datetime]  # every transfer made before this instant is rolled up
    balance: Mapped[int] = mapped_column(Micros)


class Hold(Base):
    """Credits reserved in a wallet for long work: captured, voided or expired later."""

    __tablename__ = "holds"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID)
    amount: Mapped[int] = mapped_column(Micros)
    captured: Mapped[int | None] = mapped_column(Micros)
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    reference: Mapped[str | None]
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # The lots its credits are held from, in spending order: [{"lot_id", "amount"}].
    lots: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "member_id"], ["members.org_id", "members.id"]),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "captured IS NULL OR (captured > 0 AND captured <= amount)", name="capture"
        ),
        CheckConstraint("status IN ('pending', 'captured', 'voided', 'expired')", name="status"),
        Index("ix_holds_org_id_member_id_status", "org_id", "member_id", "status"),
    )


class UsageTotal(Base):
    """A member's running sum of one usage metric (renders, frames, …)."""

    __tablename__ = "usage_totals"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "member_id"], ["members.org_id", "members.id"]),
        CheckConstraint("total >= 0", name="total_not_negative"),
        # The class manager lists the metrics an org uses (not `total`: charges update it).
        Index("ix_usage_totals_org_id_metric", "org_id", "metric"),
    )


class Group(Base):
    """A class inside an org: a handle for batch actions that never changes the burn."""

    __tablename__ = "groups"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str]
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("org_id", "name"),)


class GroupMember(Base):
    """A member's place in a group."""

    __tablename__ = "group_members"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    group_id: Mapped[str] = mapped_column(ID, primary_key=True)
    member_id: Mapped[str] = mapped_column(ID, primary_key=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "group_id"], ["groups.org_id", "groups.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(["org_id", "member_id"], ["members.org_id", "members.id"]),
        # Covering: a page of members reads their groups from the index alone (without
        # group_id here, SQLite reads the primary key's every row of the org instead).
        Index("ix_group_members_org_id_member_id_group_id", "org_id", "member_id", "group_id"),
    )


class Invitation(Base):
    """An e-mailed invitation to join an org, accepted once through its secret token."""

    __tablename__ = "invitations"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    seat: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64))
    # Who sent it (an actor, as the ledger names one): accepting it grants no more than the
    # sender may grant at that moment.
    invited_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    # The groups the person joins on accepting (those of them that still exist then).
    group_ids: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'accepted', 'revoked', 'expired')", name="status"),
        Index("ix_invitations_org_id_status", "org_id", "status"),
    )


class IdempotencyRecord(Base):
    """The first result of a write made under an idempotency key, per caller and org.

    `org_id` is empty for writes that belong to no org yet (creating one). A write the state
    refused (too few credits, say) is remembered too: `refusal` holds the error's code and
    `result` its detail, so a retry with the key answers the same refusal.
    """

    __tablename__ = "idempotency_records"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    actor: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    result: Mapped[Any] = mapped_column(JSON)
    refusal: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]


class PersonalToken(Base):
    """A user's bearer token for the API. Global; only a hash of its secret is kept."""

    __tablename__ = "personal_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser: the cookie names the row and carries a secret whose hash is kept
    here, so signing out, an idle or absolute lifetime, or a password change ends it on the
    server. Global, like users."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # the absolute end, whatever the activity
    ended_at: Mapped[datetime | None]


class UserLink(Base):
    """A single-use link mailed to a person: a password reset or an e-mail confirmation. Only
    a hash of its secret is kept; it expires, and is spent by its first use."""

    __tablename__ = "user_links"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(320))  # the address it was sent to
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("purpose IN ('reset', 'verify')", name="purpose"),)


class RateLimit(Base):
    """A counter of attempts in a fixed window, shared by every process serving the database.

    `bucket` names what is counted (failed password checks for one address, anonymous requests
    from one client address) as a digest, so no address is kept readable.
    """

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_started_at: Mapped[datetime] = mapped_column(index=True)
    hits: Mapped[int] = mapped_column(Integer)


class InstanceSecret(Base):
    """A secret of this installation made on first use (the key that signs web sessions), so
    that every process serving the database agrees on it and a restart keeps sign-ins."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class OperatorKey(Base):
    """A machine's key with the operator's powers. Global; only a hash of its secret is kept."""

    __tablename__ = "operator_keys"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str]
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(Base):
    """An org's key for the vendor's product, with scopes; only a hash of its secret is kept."""

    __tablename__ = "api_keys"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str]
    scopes: Mapped[list[str]] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class MailMessage(Base):
    """An e-mail waiting in the outbox until the SMTP server takes it; retried on failure.

    `org_id` is empty for mail to a person about their account (a password reset, say). A
    secret link the message carries is kept apart, in `secret_link`, and cleared once sent.
    """

    __tablename__ = "mail_outbox"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    secret_link: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_mail_outbox_sent_at_next_attempt_at", "sent_at", "next_attempt_at"),
    )


class UsageEvent(Base):
    """The first result of one event of a batch usage call, kept per org and key for 30 days."""

    __tablename__ = "usage_events"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    member_id: Mapped[str | None] = mapped_column(String(255))
    code: Mapped[str | None] = mapped_column(String(40))  # the error's code; None when charged
    detail: Mapped[str | None] = mapped_column(String(500))
    transfer_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(index=True)


# --- Webhooks and alerts (migration 0006) ---


class WebhookEndpoint(Base):
    """A URL of the org's that is sent the events it subscribes to, signed with its secret.

    The secret is needed in clear to sign, so it is kept encrypted with a key of the
    installation (services/webhook_secrets.py), never readable from the database alone. A
    deleted endpoint keeps its row (its deliveries stay readable) and is sent nothing more.
    """

    __tablename__ = "webhook_endpoints"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    secret_encrypted: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the change that caused it, with
    the exact body every delivery of it sends."""

    __tablename__ = "webhook_events"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event owed to one endpoint. While pending, `next_attempt_at` is when a worker may
    next take it: a worker that takes it pushes it ahead first (a lease), so one killed
    mid-delivery only delays it."""

    __tablename__ = "webhook_deliveries"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ID)
    event_id: Mapped[str] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "endpoint_id"], ["webhook_endpoints.org_id", "webhook_endpoints.id"]
        ),
        ForeignKeyConstraint(
            ["org_id", "event_id"], ["webhook_events.org_id", "webhook_events.id"]
        ),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        CheckConstraint(
            "(status = 'pending') = (next_attempt_at IS NOT NULL)", name="pending_is_due"
        ),
        # The worker's search for due deliveries, across orgs.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_org_id_endpoint_id_id", "org_id", "endpoint_id", "id"),
    )


class WebhookAttempt(Base):
    """One try at sending a delivery: when, the answer's status code or the error, how long."""

    __tablename__ = "webhook_attempts"

    org_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ID)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        ForeignKeyConstraint(
            ["org_id", "delivery_id"], ["webhook_deliveries.org_id", "webhook_deliveries.id"]
        ),
        Index("ix_webhook_attempts_org_id_delivery_id", "org_id", "delivery_id"),
    )


# --- Buying credits (migration 0007) ---


class PurchaseRequest(Base):
    """An owner's request for credits, pending until an operator approves it (which posts one
    purchase, named by `transfer_id`) or declines it (with a reason). Decided once: the checks
    below keep an approved request tied to exactly one transfer and a pending one undecided."""

    __tablename__ = "purchase_requests"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    amount: Mapped[int] = mapped_column(Micros)
    note: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[str] = mapped_column(String(200))  # an actor, as the ledger names one
    decided_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    transfer_id: Mapped[str | None] = mapped_column(ID)

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "transfer_id"], ["transfers.org_id", "transfers.id"]),
        # One purchase pays for one request at most.
        UniqueConstraint("org_id", "transfer_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("status IN ('pending', 'approved', 'declined')", name="status"),
        CheckConstraint(
            "(status = 'approved' AND transfer_id IS NOT NULL)"
            " OR (status <> 'approved' AND transfer_id IS NULL)",
            name="approved_has_transfer",
        ),
        CheckConstraint(
            "(status = 'pending' AND decided_at IS NULL)"
            " OR (status <> 'pending' AND decided_at IS NOT NULL)",
            name="decided_has_time",
        ),
        Index("ix_purchase_requests_org_id_status_id", "org_id", "status", "id"),
        # The operator console lists the pending requests of every org.
        Index("ix_purchase_requests_status_id", "status", "id"),
    )


class CheckoutSession(Base):
    """A payment page opened with the payment provider (a Stripe Checkout Session) for credits.

    Completing it credits the pool once: the row goes from open to completed in the same
    transaction as the purchase it names, and the provider's session id is unique in the org,
    so a replayed event finds it completed and credits nothing more.
    """

    __tablename__ = "checkout_sessions"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("orgs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    provider_session_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Micros)  # the credits bought
    unit_price: Mapped[int] = mapped_column(BigInteger)  # per credit, in the currency's minor units
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    transfer_id: Mapped[str | None] = mapped_column(ID)

    __table_args__ = (
        ForeignKeyConstraint(["org_id", "transfer_id"], ["transfers.org_id", "transfers.id"]),
        UniqueConstraint("org_id", "provider_session_id"),
        UniqueConstraint("org_id", "transfer_id"),
        CheckConstraint("amount > 0 AND unit_price > 0", name="amount_positive"),
        CheckConstraint("status IN ('open', 'completed', 'expired')", name="status"),
        CheckConstraint(
            "(status = 'completed' AND transfer_id IS NOT NULL)"
            " OR (status <> 'completed' AND transfer_id IS NULL)",
            name="completed_has_transfer",
        ),
    )
