"""The client's exceptions: one class per error `code` of the API, under `CreditpoolError`.

The tree is drawn in the package's docstring (creditpool.client). A problem+json answer is
turned into the class of its `code`; a code this client does not know yet becomes the class
of its HTTP status (a 409 with a new code is still a `Conflict`), else the base.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx


class CreditpoolError(Exception):
    """Base of every error the client raises: the server's answer, or none at all.

    `status` is the HTTP status (None when no answer came), `code` the API's stable snake_case
    code, `title` and `detail` the problem's human-readable parts.
    """

    code = "error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code or type(self).code
        self.title = title
        self.headers = headers or {}

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.detail}"


class NetworkError(CreditpoolError):
    """No answer came (refused, dropped or timed out), even after the automatic retries."""

    code = "network_error"


class BadRequest(CreditpoolError):
    """400: the server could not take the request as sent."""

    code = "bad_request"


class InvalidSignature(BadRequest):
    """400 invalid_signature: a provider's webhook carried a bad or missing signature."""

    code = "invalid_signature"


class Unauthenticated(CreditpoolError):
    """401 unauthenticated: no token, or a bad, revoked or expired one, or a bad password."""

    code = "unauthenticated"


class Forbidden(CreditpoolError):
    """403 forbidden: the caller is known but its role does not allow the call."""

    code = "forbidden"


class NotFound(CreditpoolError):
    """404 not_found: no such thing, or one in an org that is not the caller's."""

    code = "not_found"


class InviteInvalid(NotFound):
    """404 invite_invalid: an unknown, rotated or used invitation code."""

    code = "invite_invalid"


class Conflict(CreditpoolError):
    """409: the request is well formed but the state refuses it; nothing changed."""

    code = "conflict"


class InsufficientCredits(Conflict):
    """409 insufficient_credits: a pool, wallet or hold cannot cover the amount."""

    code = "insufficient_credits"


class NotReturnable(Conflict):
    """409 not_returnable: the org forbids credits going back to the pool."""

    code = "not_returnable"


class OrgPaused(Conflict):
    """409 org_paused: usage and holds are refused while the org is paused."""

    code = "org_paused"


class AlreadyMember(Conflict):
    """409 already_member: the user is an active member of the org already."""

    code = "already_member"


class AlreadyExists(Conflict):
    """409 already_exists: a unique name or e-mail is taken."""

    code = "already_exists"


class OwnerRequired(Conflict):
    """409 owner_required: the change would leave the org without its owner."""

    code = "owner_required"


class MemberRemoved(Conflict):
    """409 member_removed: the member was removed from the org."""

    code = "member_removed"


class LimitExceeded(Conflict):
    """409 limit_exceeded: a balance or running total would pass its limit."""

    code = "limit_exceeded"


class PreviewOutdated(Conflict):
    """409 preview_outdated: a reset was confirmed from a preview the class has outgrown."""

    code = "preview_outdated"


class RequestDecided(Conflict):
    """409 request_decided: a purchase request was already approved or declined otherwise."""

    code = "request_decided"


class CheckoutUnavailable(Conflict):
    """409 checkout_unavailable: no payment provider is set up on the server."""

    code = "checkout_unavailable"


class PayloadTooLarge(CreditpoolError):
    """413 payload_too_large: the request body is over the server's size limit."""

    code = "payload_too_large"


class ValidationError(CreditpoolError):
    """422 validation_error: a malformed request (a wrong type, a missing field, a bad time)."""

    code = "validation_error"


class InvalidAmount(ValidationError):
    """422 invalid_amount: an amount over 6 places, not positive, not a number or too large."""

    code = "invalid_amount"


class InvalidPolicy(ValidationError):
    """422 invalid_policy: a bundle that is not positive, or a cap not a multiple of it."""

    code = "invalid_policy"


class IdempotencyMismatch(ValidationError):
    """422 idempotency_mismatch: an idempotency key reused with another body."""

    code = "idempotency_mismatch"


class RateLimited(CreditpoolError):
    """429 rate_limited: too many attempts; `retry_after` is the seconds to wait, if said."""

    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asks the caller to wait (its Retry-After header), if it said."""
        return retry_after_seconds(self.headers.get("retry-after"))


class ServerError(CreditpoolError):
    """5xx: the server failed; the automatic retries were used up where they apply."""

    code = "server_error"


class Unavailable(ServerError):
    """503 unavailable: the server cannot reach its database (or is not ready) right now."""

    code = "unavailable"

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asks the caller to wait (its Retry-After header), if it said."""
        return retry_after_seconds(self.headers.get("retry-after"))


_BY_CODE: dict[str, type[CreditpoolError]] = {
    error.code: error
    for error in (
        BadRequest,
        InvalidSignature,
        Unauthenticated,
        Forbidden,
        NotFound,
        InviteInvalid,
        InsufficientCredits,
        NotReturnable,
        OrgPaused,
        AlreadyMember,
        AlreadyExists,
        OwnerRequired,
        MemberRemoved,
        LimitExceeded,
        PreviewOutdated,
        RequestDecided,
        CheckoutUnavailable,
        PayloadTooLarge,
        ValidationError,
        InvalidAmount,
        InvalidPolicy,
        IdempotencyMismatch,
        RateLimited,
        Unavailable,
    )
}
_BY_STATUS: dict[int, type[CreditpoolError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def error_class(status: int, code: str | None) -> type[CreditpoolError]:
    """The class for an answer: its code's, else its status's, else the base."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else CreditpoolError


def error_from_response(response: httpx.Response) -> CreditpoolError:
    """Turn an error answer (problem+json, or whatever a proxy sent) into its exception."""
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None  # not JSON: a proxy's page, say
    problem = body if isinstance(body, dict) else {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    detail = problem.get("detail") if isinstance(problem.get("detail"), str) else None
    error = error_class(response.status_code, code)
    return error(
        detail or response.text[:200] or response.reason_phrase,
        status=response.status_code,
        code=code,
        title=title or response.reason_phrase,
        headers={name.lower(): value for name, value in response.headers.items()},
    )


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)
