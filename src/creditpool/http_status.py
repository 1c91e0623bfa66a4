"""The HTTP status of each domain error: one map, for the API's problem+json and the pages'
error pages alike (api/ and web/ both import it; neither imports the other)."""

from __future__ import annotations

from creditpool.domain.errors import (
    Conflict,
    CreditpoolError,
    Forbidden,
    InvalidInput,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    error_for_code,
)

# The first kind an error is an instance of decides: a subclass before its parent.
_STATUS_BY_KIND: tuple[tuple[type[CreditpoolError], int], ...] = (
    (PayloadTooLarge, 413),  # an InvalidInput, but the body was never read
    (InvalidInput, 422),
    (InvalidSignature, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (Unavailable, 503),
)
UNKNOWN_KIND_STATUS = 400  # the base class itself, raised by no service


def status_of(error: CreditpoolError) -> int:
    """Return the HTTP status of a domain error."""
    for kind, status in _STATUS_BY_KIND:
        if isinstance(error, kind):
            return status
    return UNKNOWN_KIND_STATUS


def status_of_code(code: str) -> int:
    """Return the HTTP status of a domain error code (a refusal remembered by its code)."""
    return status_of(error_for_code(code, ""))
