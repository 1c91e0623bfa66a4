"""Request and response bodies of the HTTP API, and their conversion from service views.

Amounts are decimal strings in responses ("12.5") and decimal strings or JSON numbers in
requests; inside they are integers of micro-credits. Request bodies refuse unknown fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from creditpool.api import document_rules as rules
from creditpool.domain.amounts import format_credits, parse_credits
from creditpool.domain.errors import InvalidAmount, InvalidInput
from creditpool.domain.model import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    HoldStatus,
    InvitationStatus,
    LotSource,
    MemberStatus,
    Period,
    Role,
    Seat,
)
from creditpool.domain.policies import SettingsChange
from creditpool.domain.text import check_clean_text
from creditpool.services.auth import ApiKeyView, PersonalTokenView
from creditpool.services.family_rollup import RollupView
from creditpool.services.invitations import InvitationView
from creditpool.services.lot_views import ExpiringView, LotView
from creditpool.services.resets import ResetResult
from creditpool.services.usage import MAX_METRIC_VALUE, MAX_METRICS, METRIC_NAME
from creditpool.services.users import UserView
from creditpool.services.views import (
    BalanceView,
    BatchResult,
    GroupView,
    HoldView,
    MemberView,
    OrgView,
    TransferView,
    UsageResult,
)

AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]{1,6})?$"
_AMOUNT_IN_SCHEMA = rules.amount_schema(
    zero_allowed=False,
    description="Credits: a decimal string (digits and a point, at most 6 decimal places that "
    "are not zero, no sign or exponent) or a JSON number; more than 0 and at most "
    "1,000,000,000.",
    example="12.5",
)
_BUNDLE_SCHEMA = rules.amount_schema(
    zero_allowed=False,
    description="Credits, as for every amount: more than 0.",
    example="5",
)
_POLICY_AMOUNT_SCHEMA = rules.amount_schema(
    zero_allowed=True,
    description="Credits, as for every amount, but 0 too.",
    example="5",
)


def _amount(value: object) -> int:
    try:
        return parse_credits(value)
    except InvalidAmount as error:
        raise PydanticCustomError("invalid_amount", error.detail) from error


def _policy_amount(value: object) -> int:
    # Zero or negative bundles, caps and rates are policy mistakes (invalid_policy), which the
    # domain reports once it sees the whole policy; only non-numbers are refused here.
    try:
        return parse_credits(value, allow_zero=True, allow_negative=True)
    except InvalidAmount as error:
        raise PydanticCustomError("invalid_amount", error.detail) from error


AmountIn = Annotated[int, BeforeValidator(_amount), WithJsonSchema(_AMOUNT_IN_SCHEMA)]
PolicyAmountIn = Annotated[
    int, BeforeValidator(_policy_amount), WithJsonSchema(_POLICY_AMOUNT_SCHEMA)
]
BundleIn = Annotated[int, BeforeValidator(_policy_amount), WithJsonSchema(_BUNDLE_SCHEMA)]
Amount = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "description": "Credits as a decimal string: no exponent, no trailing zeros.",
            "examples": ["12.5"],
        }
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=rules.name)]
Reference = Annotated[str, Field(max_length=200, json_schema_extra=rules.plain_text)]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        json_schema_extra={"format": "email", "examples": ["ada@example.com"]},
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=1000, json_schema_extra=rules.no_nul)]
Id = Annotated[str, Field(min_length=1, max_length=64, json_schema_extra=rules.no_nul)]


def _whole_number(value: object) -> object:
    # JSON does not tell 3 from 3.0 (nor does the document): both are the number three. Text
    # ("3") and booleans stay refused, by the strict integer this comes before.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# After the bounds (Annotated[StrictInt, Field(ge=...), WHOLE]), so the document shows them.
WHOLE = BeforeValidator(_whole_number)
Metrics = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[StrictInt, Field(ge=0), WHOLE]],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_METRICS,
            "propertyNames": {"pattern": f"^{METRIC_NAME.pattern}$"},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_METRIC_VALUE},
            "description": f"Counts by metric name (1 to 64 letters, digits, '_', '.', '-'; at "
            f"most {MAX_METRICS} names), each a whole number from 0 to 2^53.",
            "examples": [{"renders": 1, "frames": 240}],
        }
    ),
]

T = TypeVar("T")


class RequestBody(BaseModel):
    """A request body: unknown fields are an error, so typos never pass silently; flags and
    counts are strict (`"yes"` is not true, `"3"` is not 3); text with NUL or broken Unicode is
    refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unclean_text(cls, data: Any) -> Any:
        try:
            check_clean_text(data)
        except InvalidInput as error:
            raise ValueError(error.detail) from error
        return data


class Page(BaseModel, Generic[T]):
    """A page of a list; pass `next_cursor` as `?cursor=` for the next one."""

    # Parametrized pages (Page[Member]) do not inherit the docstring; the schema needs one.
    model_config = ConfigDict(
        json_schema_extra={
            "description": "A page of a list; pass `next_cursor` as `?cursor=` for the next one."
        }
    )

    items: list[T]
    next_cursor: str | None


class Problem(BaseModel):
    """An error (RFC 9457 problem details) with a stable `code`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str


# Users and tokens -------------------------------------------------------------------------------


class SignUp(RequestBody):
    """A new user."""

    email: Email
    password: Password
    name: Name


class TokenRequest(RequestBody):
    """Credentials exchanged for a personal token, optionally named and expiring."""

    email: Email
    password: Annotated[str, Field(max_length=1000, json_schema_extra=rules.no_nul)]
    name: Annotated[
        str,
        Field(
            max_length=200,
            description="What the token is for: a name, or empty (or only spaces) for none.",
            json_schema_extra=rules.optional_name,
        ),
    ] = ""
    expires_in: Annotated[
        Annotated[StrictInt, Field(ge=60, le=31_536_000), WHOLE] | None,
        Field(
            description="Seconds until the token stops working by itself: 60 (a minute) to "
            "31536000 (a year). Absent or null: it works until revoked.",
        ),
    ] = None


class User(BaseModel):
    """A person with a login."""

    id: str
    email: str
    name: str
    created_at: datetime
    email_verified: bool = Field(description="Whether the person confirmed the address.")

    @classmethod
    def of(cls, view: UserView) -> User:
        """Return the body for a user."""
        return cls(
            id=view.id,
            email=view.email,
            name=view.name,
            created_at=view.created_at,
            email_verified=view.email_verified,
        )


class PasswordChange(RequestBody):
    """The current password, and the one to use from now on."""

    current_password: Annotated[str, Field(max_length=1000, json_schema_extra=rules.no_nul)]
    new_password: Password


class PasswordResetRequest(RequestBody):
    """The address to mail a reset link to, if it has an account."""

    email: Annotated[
        str,
        Field(
            max_length=320,
            description="The account's e-mail address; any other text is answered the same "
            "(202) and mails nothing.",
            examples=["ada@example.com"],
            json_schema_extra=rules.no_nul,
        ),
    ]


class NewPassword(RequestBody):
    """A new password, set through a reset link."""

    password: Password


class Secret(BaseModel):
    """A new personal token: the token is shown this once."""

    id: str
    token: str
    name: str
    expires_at: datetime | None


class PersonalToken(BaseModel):
    """A personal token as listed, never the token itself."""

    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, view: PersonalTokenView) -> PersonalToken:
        """Return the body for a token."""
        return cls(
            id=view.id,
            name=view.name,
            created_at=view.created_at,
            last_used_at=view.last_used_at,
            expires_at=view.expires_at,
        )


class ApiKeySecret(BaseModel):
    """A new org API key: the key is shown this once."""

    id: str
    key: str


class Membership(BaseModel):
    """One org the user belongs to."""

    org_id: str
    org_name: str
    member_id: str
    role: Role


class Me(BaseModel):
    """The signed-in user and its memberships."""

    user: User
    memberships: list[Membership]


# Organisations ----------------------------------------------------------------------------------


class AutoAllocationIn(RequestBody):
    """Any part of the automatic-allocation policy."""

    enabled: StrictBool | None = None
    bundle: BundleIn | None = None
    max_per_member: Annotated[
        PolicyAmountIn | None,
        Field(
            description="At least 0 and a multiple of the bundle (the one sent, else the "
            "current one): 422 invalid_policy otherwise. With a period, the cap of each period."
        ),
    ] = None
    period: Literal["week", "month"] | None = Field(
        default=None,
        description="The budget's period: the cap counts what a member receives "
        "automatically within each week (from Monday 00:00) or month (from the 1st, 00:00), "
        "local time in the org's time zone; null: for ever. Absent keeps the current one; a "
        "change starts counting afresh from the period containing now.",
    )
    reclaim: StrictBool | None = Field(
        default=None,
        description="At the end of each period, what remains of a member's automatic "
        "allotments goes back to the pool as a `reclaim` transfer (only if the org is "
        "returnable); manual allotments never do.",
    )


class SeatRatesIn(RequestBody):
    """Any part of the seat rates, in credits a year per seat."""

    licensed: PolicyAmountIn | None = None
    unlicensed: PolicyAmountIn | None = None
    external: PolicyAmountIn | None = None


class AlertsIn(RequestBody):
    """Either alert threshold; null turns it off, an absent one keeps its value."""

    low_balance: AmountIn | None = Field(
        default=None, description="Alert when the pool's available falls below this."
    )
    days_left: Annotated[StrictInt, Field(ge=1, le=3650), WHOLE] | None = Field(
        default=None, description="Alert when the pool runs out within this many days."
    )


class SettingsIn(RequestBody):
    """Any part of an org's settings; the rest keeps its value."""

    returnable: StrictBool | None = None
    auto_allocation: AutoAllocationIn | None = None
    seat_rates: SeatRatesIn | None = None
    alerts: AlertsIn | None = None
    timezone: (
        Annotated[
            str,
            Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"),
        ]
        | None
    ) = Field(
        default=None,
        description="The IANA time zone of period boundaries (Europe/Paris); an unknown "
        "name: 422 validation_error. A change starts counting afresh.",
    )

    def change(self) -> SettingsChange:
        """Return the change these fields describe."""
        auto = self.auto_allocation or AutoAllocationIn()
        rates = self.seat_rates or SeatRatesIn()
        return SettingsChange(
            returnable=self.returnable,
            auto_enabled=auto.enabled,
            auto_bundle=auto.bundle,
            auto_max_per_member=auto.max_per_member,
            rate_licensed=rates.licensed,
            rate_unlicensed=rates.unlicensed,
            rate_external=rates.external,
            alert_low_balance=None if self.alerts is None else self.alerts.low_balance,
            alert_days_left=None if self.alerts is None else self.alerts.days_left,
            alerts_set=frozenset(() if self.alerts is None else self.alerts.model_fields_set),
            auto_period=None if auto.period is None else Period(auto.period),
            period_set="period" in auto.model_fields_set,
            auto_reclaim=auto.reclaim,
            timezone=self.timezone,
        )


class AutoAllocation(BaseModel):
    """Members are topped up from the pool in bundles, up to a cap per member."""

    enabled: bool
    bundle: Amount
    max_per_member: Amount
    period: Literal["week", "month"] | None = Field(
        description="null: the cap counts for ever; else per week or month, in `timezone`."
    )
    reclaim: bool = Field(
        description="Whether a period's unused automatic allotments go back to the pool at "
        "its end (when the org is returnable)."
    )


class SeatRates(BaseModel):
    """Credits a year that one active seat of each kind burns."""

    licensed: Amount
    unlicensed: Amount
    external: Amount


class Alerts(BaseModel):
    """When the owner hears the pool runs low (null: off): `credits.low` webhooks and mail."""

    low_balance: Amount | None
    days_left: int | None


class Settings(BaseModel):
    """An org's settings."""

    returnable: bool
    auto_allocation: AutoAllocation
    seat_rates: SeatRates
    alerts: Alerts
    timezone: str = Field(description="The IANA time zone of period boundaries.")


class Balance(BaseModel):
    """An org's credits at one instant, seat burn included."""

    at: datetime
    available: Amount
    allocated: Amount
    purchased: Amount
    used: Amount
    metered: Amount
    burn_rate_per_day: Amount
    depletes_at: datetime | None
    expired: Amount = Field(
        description="What lots left in the pool and wallets when they lapsed, since the org began."
    )
    expiring: list[Expiring] = Field(
        description="The next five instants at which lots lapse after `at`, soonest first, "
        "each with what lapses then: what the wallets hold of them, less what pending holds "
        "keep, and what the seat burn until then leaves of them in the pool; empty when no lot "
        "expires."
    )

    @classmethod
    def of(cls, view: BalanceView) -> Balance:
        """Return the body for a balance."""
        return cls(
            at=view.at,
            available=format_credits(view.available),
            allocated=format_credits(view.allocated),
            purchased=format_credits(view.purchased),
            used=format_credits(view.used),
            metered=format_credits(view.metered),
            burn_rate_per_day=format_credits(view.burn_rate_per_day),
            depletes_at=view.depletes_at,
            expired=format_credits(view.expired),
            expiring=Expiring.all_of(view.expiring),
        )


class Expiring(BaseModel):
    """Credits that lapse together at one instant."""

    at: datetime
    amount: Amount

    @classmethod
    def all_of(cls, views: Sequence[ExpiringView]) -> list[Expiring]:
        """Return the bodies for expiry instants."""
        return [cls(at=view.at, amount=format_credits(view.amount)) for view in views]


class Org(BaseModel):
    """An organisation with its pool."""

    id: str
    name: str
    paused: bool
    invite_code: str | None = Field(
        description="The invite code; null for a caller that may not invite (an org API key)."
    )
    settings: Settings
    balance: Balance
    usage: dict[str, int]
    created_at: datetime
    parent_id: str | None = Field(description="The org's parent; null at the top of a family.")
    rollup: Rollup

    @classmethod
    def of(cls, view: OrgView) -> Org:
        """Return the body for an org."""
        return cls(
            id=view.id,
            name=view.name,
            paused=view.paused,
            invite_code=view.invite_code,
            settings=settings_body(view.settings),
            balance=Balance.of(view.balance),
            usage=view.usage,
            created_at=view.created_at,
            parent_id=view.parent_id,
            rollup=Rollup.of(view.rollup),
        )


class Rollup(BaseModel):
    """An org and all its descendants together: orgs, active members, their pools' credits
    now (seat burn included), in wallets, used, burnt by seats, and usage metrics summed."""

    orgs: int
    members: int
    available: Amount
    allocated: Amount
    used: Amount
    metered: Amount
    usage: dict[str, int]

    @classmethod
    def of(cls, view: RollupView) -> Rollup:
        """Return the body for a roll-up."""
        return cls(
            orgs=view.orgs,
            members=view.members,
            available=format_credits(view.available),
            allocated=format_credits(view.allocated),
            used=format_credits(view.used),
            metered=format_credits(view.metered),
            usage=view.usage,
        )


def settings_body(settings: Any) -> Settings:
    """Return the body for the domain's OrgSettings."""
    auto, rates = settings.auto_allocation, settings.seat_rates
    return Settings(
        returnable=settings.returnable,
        auto_allocation=AutoAllocation(
            enabled=auto.enabled,
            bundle=format_credits(auto.bundle),
            max_per_member=format_credits(auto.max_per_member),
            period=None if auto.period is None else str(auto.period),
            reclaim=auto.reclaim,
        ),
        seat_rates=SeatRates(
            licensed=format_credits(rates.licensed),
            unlicensed=format_credits(rates.unlicensed),
            external=format_credits(rates.external),
        ),
        alerts=Alerts(
            low_balance=(
                None
                if settings.alerts.low_balance is None
                else format_credits(settings.alerts.low_balance)
            ),
            days_left=settings.alerts.days_left,
        ),
        timezone=settings.timezone,
    )


class NewOrg(RequestBody):
    """An org to open for an existing user, its owner."""

    name: Name
    owner_email: Email
    settings: SettingsIn | None = None


class Purchase(RequestBody):
    """Credits bought by the org: a new lot."""

    amount: AmountIn
    reference: Reference | None = None
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When what is left of the lot lapses: a future instant with its offset.",
    )
    priority: StrictInt = Field(
        default=DEFAULT_PRIORITY,
        ge=0,
        le=MAX_PRIORITY,
        description="Lots of lower priority are spent first.",
    )


class NewApiKey(RequestBody):
    """A key for the vendor's product."""

    name: Name
    scopes: Annotated[list[Literal["usage"]], Field(min_length=1, max_length=10)]


class ApiKey(BaseModel):
    """An org API key, never its secret."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, view: ApiKeyView) -> ApiKey:
        """Return the body for a key."""
        return cls(
            id=view.id,
            name=view.name,
            scopes=view.scopes,
            created_at=view.created_at,
            last_used_at=view.last_used_at,
        )


class Lot(BaseModel):
    """Credits that entered the pool together, and where they are now. `amount` = `in_pool`
    + `in_wallets` + `used` + `metered` + `moved` + `expired`."""

    id: str
    source: LotSource = Field(description="A purchase, or a parent's allotment.")
    parent_lot_id: str | None = Field(
        description="The parent's lot this one carries down (source parent); null otherwise."
    )
    amount: Amount = Field(description="What entered the pool.")
    in_pool: Amount = Field(description="In the pool now, seat burn so far taken.")
    in_wallets: Amount = Field(description="In members' wallets now, held credits included.")
    held: Amount = Field(description="Of `in_wallets`, what pending holds keep.")
    used: Amount = Field(description="Charged as usage.")
    metered: Amount = Field(description="Burnt by seats.")
    moved: Amount = Field(
        description="Gone to the org's children (less what came back) or back to its parent."
    )
    expired: Amount = Field(description="Lapsed at `expires_at`.")
    priority: int = Field(description="Lots of lower priority are spent first.")
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, view: LotView) -> Lot:
        """Return the body for a lot."""
        return cls(
            id=view.id,
            source=LotSource(view.source),
            parent_lot_id=view.parent_lot_id,
            amount=format_credits(view.amount),
            in_pool=format_credits(view.in_pool),
            in_wallets=format_credits(view.in_wallets),
            held=format_credits(view.held),
            used=format_credits(view.used),
            metered=format_credits(view.metered),
            moved=format_credits(view.moved),
            expired=format_credits(view.expired),
            priority=view.priority,
            expires_at=view.expires_at,
            created_at=view.created_at,
        )


class LotShare(BaseModel):
    """What one lot gave to a transfer."""

    lot_id: str
    amount: Amount


class Transfer(BaseModel):
    """One movement of credits."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    batch_id: str
    kind: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    amount: Amount
    member_id: str | None
    reference: str | None
    metrics: dict[str, int] | None
    actor: str
    created_at: datetime
    lots: list[LotShare] = Field(
        default_factory=list, description="Which lots it moved, in the order they were spent."
    )

    @classmethod
    def of(cls, view: TransferView) -> Transfer:
        """Return the body for a transfer."""
        return cls(
            id=view.id,
            batch_id=view.batch_id,
            kind=view.kind,
            from_=view.debit_account,
            to=view.credit_account,
            amount=format_credits(view.amount),
            member_id=view.member_id,
            reference=view.reference,
            metrics=view.metrics,
            actor=view.actor,
            created_at=view.created_at,
            lots=[
                LotShare(lot_id=share.lot_id, amount=format_credits(share.amount))
                for share in view.lots
            ],
        )


# Members, groups, invitations -------------------------------------------------------------------


class Member(BaseModel):
    """A membership with its wallet and usage."""

    id: str
    user_id: str
    email: str
    name: str
    role: Role
    seat: Seat
    status: MemberStatus
    credits_available: Amount
    credits_held: Amount
    credits_allocated: Amount
    credits_used: Amount
    auto_allocated: Amount
    auto_allocated_this_period: Amount = Field(
        description="What counts toward the automatic cap: received automatically since the "
        "org's period began (without a period: ever)."
    )
    period_ends_at: datetime | None = Field(
        description="When the period ends and the count starts afresh; null without a period."
    )
    usage: dict[str, int]
    groups: list[str]
    access: bool
    joined_at: datetime
    credits_expiring: list[Expiring] = Field(
        description="What the wallet holds of lots that expire, less what pending holds keep, "
        "by instant, soonest first (at most five instants); empty when none of its credits "
        "expire."
    )

    @classmethod
    def of(cls, view: MemberView) -> Member:
        """Return the body for a member.

        Every field is given, so every Member shares one set of the names given
        (`model_fields_set`): pydantic makes a set per instance, and a set of 19 names takes
        2 KB, more than the rest of the member (an allotment's answer lists up to 100,000)."""
        member = cls(
            id=view.id,
            user_id=view.user_id,
            email=view.email,
            name=view.name,
            role=view.role,
            seat=view.seat,
            status=view.status,
            credits_available=format_credits(view.credits_available),
            credits_held=format_credits(view.credits_held),
            credits_allocated=format_credits(view.credits_allocated),
            credits_used=format_credits(view.credits_used),
            auto_allocated=format_credits(view.auto_allocated),
            auto_allocated_this_period=format_credits(view.auto_allocated_this_period),
            period_ends_at=view.period_ends_at,
            usage=view.usage,
            groups=view.groups,
            access=view.access,
            joined_at=view.joined_at,
            credits_expiring=Expiring.all_of(view.credits_expiring),
        )
        object.__setattr__(member, "__pydantic_fields_set__", _MEMBER_FIELDS)
        return member


_MEMBER_FIELDS = set(Member.model_fields)


class MemberChange(RequestBody):
    """A new role or seat for a member."""

    role: Role | None = None
    seat: Seat | None = None


class NewGroup(RequestBody):
    """A class inside the org."""

    name: Name


class GroupMembers(RequestBody):
    """Who is in a group, all of it."""

    member_ids: Annotated[list[Id], Field(max_length=10_000)]


class Group(BaseModel):
    """A class inside the org."""

    id: str
    name: str
    member_count: int

    @classmethod
    def of(cls, view: GroupView) -> Group:
        """Return the body for a group."""
        return cls(id=view.id, name=view.name, member_count=view.member_count)


class InviteLink(BaseModel):
    """The org's invite code and the link that carries it."""

    code: str
    url: str


class NewInvitations(RequestBody):
    """People to invite by e-mail."""

    emails: Annotated[list[Email], Field(min_length=1, max_length=100)]
    role: Literal[Role.MANAGER, Role.MEMBER] = Role.MEMBER
    seat: Seat = Seat.LICENSED


class Invitation(BaseModel):
    """An e-mailed invitation."""

    id: str
    email: str
    role: Role
    seat: Seat
    status: InvitationStatus
    created_at: datetime

    @classmethod
    def of(cls, view: InvitationView) -> Invitation:
        """Return the body for an invitation."""
        return cls(
            id=view.id,
            email=view.email,
            role=view.role,
            seat=view.seat,
            status=view.status,
            created_at=view.created_at,
        )


class Invitations(BaseModel):
    """The invitations made."""

    items: list[Invitation]


class Reset(BaseModel):
    """What a reset did, or would do."""

    removed: int
    revoked: Amount
    invitations_revoked: int
    invite_code: str

    @classmethod
    def of(cls, result: ResetResult) -> Reset:
        """Return the body for a reset."""
        return cls(
            removed=result.removed,
            revoked=format_credits(result.revoked),
            invitations_revoked=result.invitations_revoked,
            invite_code=result.invite_code,
        )


# Credits ----------------------------------------------------------------------------------------


MemberIds = Annotated[
    list[Id] | Literal["all"],
    Field(
        description='Members by id (up to 10,000), or "all": every active member whose role is '
        "member.",
        examples=[["mem_01m8tmbbh0p7yaer25nvpsat6p"], "all"],
    ),
]
GroupId = Annotated[Id, Field(description="Each active member of this group.")]


def _one_of_members_or_group(schema: dict[str, Any]) -> None:
    # Exactly one of the two (else 422 validation_error), which their types alone cannot say.
    schema.update(rules.exactly_one_of("member_ids", "group_id"))
    # pydantic puts the list's bound beside the union, as a maxLength that bounds nothing.
    for form in schema["properties"]["member_ids"]["anyOf"]:
        form.pop("maxLength", None)
        for inner in form.get("anyOf", [form]):
            if inner.get("type") == "array":
                inner["maxItems"] = 10_000


class Allocation(RequestBody):
    """Credits from the pool to each of some members: name `member_ids` or `group_id`."""

    model_config = ConfigDict(json_schema_extra=_one_of_members_or_group)

    member_ids: MemberIds | None = Field(default=None, max_length=10_000)
    group_id: GroupId | None = None
    amount: AmountIn


class Revocation(RequestBody):
    """Credits back to the pool from each of some members; all they can spend without amount."""

    model_config = ConfigDict(json_schema_extra=_one_of_members_or_group)

    member_ids: MemberIds | None = Field(default=None, max_length=10_000)
    group_id: GroupId | None = None
    amount: AmountIn | None = None


class Batch(BaseModel):
    """An allocation or revocation: one batch of transfers."""

    batch_id: str
    total: Amount
    members: list[Member]

    @classmethod
    def of(cls, result: BatchResult) -> Batch:
        """Return the body for a batch."""
        return cls(
            batch_id=result.batch_id,
            total=format_credits(result.total),
            members=[Member.of(member) for member in result.members],
        )


class UsageIn(RequestBody):
    """Work done by a member, charged to its wallet."""

    amount: AmountIn
    metrics: Metrics | None = None
    reference: Reference | None = None


class Usage(BaseModel):
    """The usage transfer, and the member after it."""

    transfer: Transfer
    member: Member

    @classmethod
    def of(cls, result: UsageResult) -> Usage:
        """Return the body for a charge."""
        return cls(transfer=Transfer.of(result.transfer), member=Member.of(result.member))


class HoldIn(RequestBody):
    """Credits to reserve for long work."""

    amount: AmountIn
    expires_in: Annotated[StrictInt, Field(ge=1, le=604_800), WHOLE] = 3600
    reference: Reference | None = None


class CaptureIn(RequestBody):
    """What to charge of a hold."""

    amount: AmountIn
    metrics: Metrics | None = None


class Hold(BaseModel):
    """Credits reserved in a wallet."""

    id: str
    member_id: str
    amount: Amount
    status: HoldStatus
    captured: Amount | None
    expires_at: datetime
    reference: str | None
    created_at: datetime

    @classmethod
    def of(cls, view: HoldView) -> Hold:
        """Return the body for a hold."""
        return cls(
            id=view.id,
            member_id=view.member_id,
            amount=format_credits(view.amount),
            status=view.status,
            captured=None if view.captured is None else format_credits(view.captured),
            expires_at=view.expires_at,
            reference=view.reference,
            created_at=view.created_at,
        )


class UsageEvent(BaseModel):
    """One event of a batch: a usage charge under a key unique in the org. Events are checked
    one by one, so a malformed event refuses only itself."""

    key: Annotated[str, Field(min_length=1, max_length=255, json_schema_extra=rules.no_nul)]
    member_id: Annotated[str, Field(min_length=1)]
    amount: Annotated[int, WithJsonSchema(_AMOUNT_IN_SCHEMA)]
    metrics: Metrics | None = None
    reference: Reference | None = None


class UsageBatchIn(RequestBody):
    """1 to 1,000 usage events (see UsageEvent)."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unclean_text(cls, data: Any) -> Any:
        # Replaces RequestBody's check: each event is checked alone, refusing only itself.
        return data

    events: Annotated[
        list[Any],
        Field(min_length=1, max_length=1000),
        WithJsonSchema(
            {
                "type": "array",
                # Any value is taken: one that is not a UsageEvent is answered in its own
                # result (status 422) and the others are still charged.
                "items": {
                    "anyOf": [{"$ref": "#/components/schemas/UsageEvent"}, {}],
                    "description": "A UsageEvent; anything else gets a result of status 422 "
                    "and does not stop the other events.",
                },
                "minItems": 1,
                "maxItems": 1000,
            }
        ),
    ]


class UsageEventResult(BaseModel):
    """What became of one event: `status` is what the single call would have answered."""

    key: str | None
    status: int
    code: str | None = None
    transfer_id: str | None = None


class UsageBatch(BaseModel):
    """The events' results, in the order sent."""

    results: list[UsageEventResult]


class Access(BaseModel):
    """Whether the org's pool pays for this member's seat right now."""

    access: bool
    reason: Literal["ok", "removed", "external", "unlicensed", "paused", "no_credits"]
