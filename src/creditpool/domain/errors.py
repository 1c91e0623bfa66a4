"""The one error tree of creditpool.

Every error a caller can act on is a `CreditpoolError` with a stable snake_case `code`.
creditpool.http_status maps the classes to HTTP statuses, once for the API and the pages;
services raise nothing else for business failures.

    CreditpoolError
    ├── InvalidInput             validation_error: malformed arguments, caught before any change
    │   ├── InvalidAmount        invalid_amount: not a number, over 6 places, <= 0, too large
    │   ├── InvalidPolicy        invalid_policy: a bundle <= 0, or a cap not a multiple of it
    │   ├── PayloadTooLarge      payload_too_large: a request body over the size limit (413)
    │   └── IdempotencyMismatch  idempotency_mismatch: a key reused with other arguments
    ├── Unauthenticated          unauthenticated: no caller, or a bad token or password
    ├── Forbidden                forbidden: the caller's role does not allow the action
    ├── NotFound                 not_found: no such thing in this org (or in an org not yours)
    │   └── InviteInvalid        invite_invalid: an unknown, rotated or used invitation
    ├── RateLimited              rate_limited: too many attempts; `retry_after` says when to retry
    ├── Conflict                 the request is well formed but the state refuses it
    │   ├── InsufficientCredits  insufficient_credits: a pool, wallet or hold cannot cover it
    │   ├── NotReturnable        not_returnable: the org forbids credits going back to the pool
    │   ├── OrgPaused            org_paused: usage and holds are refused while paused
    │   ├── AlreadyMember        already_member: the user is an active member already
    │   ├── AlreadyExists        already_exists: a unique name or e-mail is taken
    │   ├── OwnerRequired        owner_required: the action would leave the org without owner
    │   ├── MemberRemoved        member_removed: the member was removed from the org
    │   ├── LimitExceeded        limit_exceeded: a balance or running total would pass its limit
    │   ├── PreviewOutdated      preview_outdated: a reset confirmed from a stale preview
    │   ├── RequestDecided       request_decided: a purchase request already approved or declined
    │   └── CheckoutUnavailable  checkout_unavailable: no payment provider is set up
    ├── InvalidSignature         invalid_signature: a provider's webhook not signed as it must be
    └── Unavailable              unavailable: the database cannot be reached now; retry later
"""

from __future__ import annotations


class CreditpoolError(Exception):
    """Base of every error a caller can act on; `code` never changes once published."""

    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(CreditpoolError):
    """Raised when arguments are malformed; nothing has changed."""

    code = "validation_error"


class InvalidAmount(InvalidInput):
    """Raised when an amount is not a usable number of credits."""

    code = "invalid_amount"


class InvalidPolicy(InvalidInput):
    """Raised when automatic-allocation settings contradict each other."""

    code = "invalid_policy"


class PayloadTooLarge(InvalidInput):
    """Raised when a request body is larger than the service reads; nothing was read whole."""

    code = "payload_too_large"


class IdempotencyMismatch(InvalidInput):
    """Raised when an idempotency key is replayed with different arguments."""

    code = "idempotency_mismatch"


class Unauthenticated(CreditpoolError):
    """Raised when the caller cannot be identified."""

    code = "unauthenticated"


class Forbidden(CreditpoolError):
    """Raised when the caller is known but its role does not allow the action."""

    code = "forbidden"


class NotFound(CreditpoolError):
    """Raised when a thing does not exist in the org the caller asked about."""

    code = "not_found"


class InviteInvalid(NotFound):
    """Raised when an invite code or invitation token is unknown, rotated, used or expired."""

    code = "invite_invalid"


class Conflict(CreditpoolError):
    """Raised when the request is well formed but the current state refuses it."""

    code = "conflict"


class InsufficientCredits(Conflict):
    """Raised when a pool, wallet or hold cannot cover an amount; nothing has moved."""

    code = "insufficient_credits"


class NotReturnable(Conflict):
    """Raised when credits would go back to the pool of an org that forbids it."""

    code = "not_returnable"


class OrgPaused(Conflict):
    """Raised when usage or a hold meets a paused org."""

    code = "org_paused"


class AlreadyMember(Conflict):
    """Raised when an active member joins again."""

    code = "already_member"


class AlreadyExists(Conflict):
    """Raised when a unique e-mail or name is taken."""

    code = "already_exists"


class OwnerRequired(Conflict):
    """Raised when an action would remove or demote the org's only owner."""

    code = "owner_required"


class MemberRemoved(Conflict):
    """Raised when usage or a hold names a removed member."""

    code = "member_removed"


class LimitExceeded(Conflict):
    """Raised when a change would push a balance or running total past what it can hold."""

    code = "limit_exceeded"


class PreviewOutdated(Conflict):
    """Raised when a reset confirmed from a preview would now do something else."""

    code = "preview_outdated"


class RequestDecided(Conflict):
    """Raised when a purchase request already decided the other way is approved or declined."""

    code = "request_decided"


class CheckoutUnavailable(Conflict):
    """Raised when a checkout is asked for but no payment provider is configured."""

    code = "checkout_unavailable"


class InvalidSignature(CreditpoolError):
    """Raised when a payment provider's webhook has a bad, stale or missing signature; nothing
    has changed (400)."""

    code = "invalid_signature"


class RateLimited(CreditpoolError):
    """Raised when a caller went over a rate limit; `retry_after` is seconds until it lifts."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(CreditpoolError):
    """Raised when the database cannot be reached right now (down, restarting, the connection
    dropped); `retry_after` is seconds to wait. A write may or may not have been applied:
    retrying it with the same idempotency key is safe and answers which."""

    code = "unavailable"

    def __init__(self, detail: str, *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def error_for_code(code: str, detail: str) -> CreditpoolError:
    """Return an error of the class whose code this is (the base class for an unknown code)."""
    pending: list[type[CreditpoolError]] = [CreditpoolError]
    while pending:
        kind = pending.pop()
        if kind.code == code:
            return kind(detail)
        pending.extend(kind.__subclasses__())
    return CreditpoolError(detail)
