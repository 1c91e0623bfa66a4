"""creditpool.client: a typed Python client of the creditpool HTTP API (version 1 to 1.2).

    from decimal import Decimal
    from creditpool.client import Client, InsufficientCredits

    with Client("http://127.0.0.1:8000", token=api_key) as creditpool:
        try:
            charged = creditpool.charge_usage(
                org=org_id, member=member_id, amount=Decimal("1.5"), metrics={"renders": 1}
            )
            print(charged.member.credits_available)   # 9 (a Decimal)
        except InsufficientCredits as error:
            print(error.detail)
        for member in creditpool.members(org=org_id):   # follows next_cursor page by page
            print(member.email, member.credits_available)

`AsyncClient` has the same methods as coroutines (`await creditpool.me()`, lists read with
`async for`). Every argument is keyword-only; amounts are `Decimal` (or `int`) both ways, times
timezone-aware `datetime`; results are frozen objects of this package. A list method returns
pages to iterate, or `.page(cursor)` for one page. Every POST carries an Idempotency-Key (the
`idempotency_key=` given, else one made for the call) that its automatic retries, after a
network error or a 502/503/504, send again: a write is applied once whatever the retries.

Names: the clients `Client` and `AsyncClient`; their lists `Pages` and `AsyncPages`, one
`Page` at a time. What the calls answer: `User`, `NewToken`, `PersonalToken`, `Me`,
`Membership`, `Org`, `Settings` (with `AutoAllocation`, `SeatRates`, `Alerts`), `Balance`,
`Transfer`, `NewApiKey`, `ApiKey`, `InviteLink`, `Invitation`, `Member`, `Group`, `Reset`,
`BatchResult`, `UsageResult`, `Hold`, `UsageEventResult`, `Access`, `Webhook`, `NewWebhook`,
`Delivery`, `PurchaseRequest`, `Checkout`, `Readiness`, `Rollup`, `FamilyTransfer`, `Lot`,
`LotShare`, `Expiring`. What some calls take: `UsageEvent`, `SettingsChange` (with
`AutoAllocationChange`, `SeatRatesChange`, `AlertsChange`). And the exceptions below.

Errors: each problem `code` of the API is a class; a code this client does not know becomes
the class of its HTTP status (a 409 is at least a `Conflict`), else the base.

    CreditpoolError              status, code, title, detail (and headers) of the answer
    ├── NetworkError             no answer at all, even after the retries (status None)
    ├── BadRequest               400
    │   └── InvalidSignature     invalid_signature: a provider's webhook signature is wrong
    ├── Unauthenticated          401 unauthenticated: no token, or a bad or revoked one
    ├── Forbidden                403 forbidden: the caller's role does not allow it
    ├── NotFound                 404 not_found: no such thing in an org of the caller's
    │   └── InviteInvalid        invite_invalid: an unknown, rotated or used invitation
    ├── Conflict                 409: the state refuses the request; nothing changed
    │   ├── InsufficientCredits  insufficient_credits: a pool, wallet or hold cannot cover it
    │   ├── NotReturnable        not_returnable: the org forbids credits back to the pool
    │   ├── OrgPaused            org_paused: no usage or holds while the org is paused
    │   ├── AlreadyMember        already_member: the user is an active member already
    │   ├── AlreadyExists        already_exists: the e-mail or name is taken
    │   ├── OwnerRequired        owner_required: the org would be left without its owner
    │   ├── MemberRemoved        member_removed: the member was removed from the org
    │   ├── LimitExceeded        limit_exceeded: a balance or total would pass its limit
    │   ├── PreviewOutdated      preview_outdated: a reset confirmed from a stale preview
    │   ├── RequestDecided       request_decided: the purchase request was decided otherwise
    │   └── CheckoutUnavailable  checkout_unavailable: no payment provider is set up
    ├── PayloadTooLarge          413 payload_too_large: the body is over the size limit
    ├── ValidationError          422 validation_error: a malformed request
    │   ├── InvalidAmount        invalid_amount: over 6 places, not positive, too large
    │   ├── InvalidPolicy        invalid_policy: a bundle not positive, a cap not a multiple
    │   └── IdempotencyMismatch  idempotency_mismatch: a key reused with another body
    ├── RateLimited              429 rate_limited: `retry_after` says when to try again
    └── ServerError              5xx
        └── Unavailable          503 unavailable: the database is out of reach; `retry_after`
"""

from creditpool.client._async import AsyncClient, AsyncPages
from creditpool.client._errors import (
    AlreadyExists,
    AlreadyMember,
    BadRequest,
    CheckoutUnavailable,
    Conflict,
    CreditpoolError,
    Forbidden,
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidAmount,
    InvalidPolicy,
    InvalidSignature,
    InviteInvalid,
    LimitExceeded,
    MemberRemoved,
    NetworkError,
    NotFound,
    NotReturnable,
    OrgPaused,
    OwnerRequired,
    PayloadTooLarge,
    PreviewOutdated,
    RateLimited,
    RequestDecided,
    ServerError,
    Unauthenticated,
    Unavailable,
    ValidationError,
)
from creditpool.client._families import FamilyTransfer
from creditpool.client._integration_models import (
    Checkout,
    Delivery,
    NewWebhook,
    PurchaseRequest,
    Readiness,
    Webhook,
)
from creditpool.client._models import (
    Access,
    Alerts,
    AlertsChange,
    ApiKey,
    AutoAllocation,
    AutoAllocationChange,
    Balance,
    BatchResult,
    Expiring,
    Group,
    Hold,
    Invitation,
    InviteLink,
    Lot,
    LotShare,
    Me,
    Member,
    Membership,
    NewApiKey,
    NewToken,
    Org,
    Page,
    PersonalToken,
    Reset,
    Rollup,
    SeatRates,
    SeatRatesChange,
    Settings,
    SettingsChange,
    Transfer,
    UsageEvent,
    UsageEventResult,
    UsageResult,
    User,
)
from creditpool.client._sync import Client, Pages

__all__ = [
    "Access",
    "Alerts",
    "AlertsChange",
    "AlreadyExists",
    "AlreadyMember",
    "ApiKey",
    "AsyncClient",
    "AsyncPages",
    "AutoAllocation",
    "AutoAllocationChange",
    "BadRequest",
    "Balance",
    "BatchResult",
    "Checkout",
    "CheckoutUnavailable",
    "Client",
    "Conflict",
    "CreditpoolError",
    "Delivery",
    "Expiring",
    "FamilyTransfer",
    "Forbidden",
    "Group",
    "Hold",
    "IdempotencyMismatch",
    "InsufficientCredits",
    "InvalidAmount",
    "InvalidPolicy",
    "InvalidSignature",
    "Invitation",
    "InviteInvalid",
    "InviteLink",
    "LimitExceeded",
    "Lot",
    "LotShare",
    "Me",
    "Member",
    "MemberRemoved",
    "Membership",
    "NetworkError",
    "NewApiKey",
    "NewToken",
    "NewWebhook",
    "NotFound",
    "NotReturnable",
    "Org",
    "OrgPaused",
    "OwnerRequired",
    "Page",
    "Pages",
    "PayloadTooLarge",
    "PersonalToken",
    "PreviewOutdated",
    "PurchaseRequest",
    "RateLimited",
    "Readiness",
    "RequestDecided",
    "Reset",
    "Rollup",
    "SeatRates",
    "SeatRatesChange",
    "ServerError",
    "Settings",
    "SettingsChange",
    "Transfer",
    "Unauthenticated",
    "Unavailable",
    "UsageEvent",
    "UsageEventResult",
    "UsageResult",
    "User",
    "ValidationError",
    "Webhook",
]
