"""Rate limits as dependencies of the API's anonymous calls (see services.rate_limits)."""

from __future__ import annotations

from fastapi import Depends, Request

from creditpool.api.deps import ConfigDep, CurrentUserId, UowDep
from creditpool.services import rate_limits
from creditpool.services.rate_limits import FailedPasswords, Limits


def _client_address(request: Request) -> str:
    # Behind a trusted proxy, the address it names (`serve --forwarded-allow-ips`).
    return request.client.host if request.client is not None else "unknown"


def anonymous_limit(request: Request, uow: UowDep, config: ConfigDep) -> None:
    """Count a call from its client address; 429 `rate_limited` over the limit."""
    limit = Limits.from_config(config).anonymous
    if limit is None:
        return
    host = _client_address(request)
    rate_limits.hit(uow, rate_limits.bucket_of("anonymous", host), limit)


def signed_in_limit(uow: UowDep, config: ConfigDep, user_id: CurrentUserId) -> None:
    """Count a signed-in person's call (joining, accepting) as the person's own, not their
    address's: a whole class behind one school address may join in the same minute."""
    limit = Limits.from_config(config).anonymous
    if limit is None:
        return
    rate_limits.hit(uow, rate_limits.bucket_of("person", user_id), limit)


def failed_password_limit(request: Request, config: ConfigDep) -> FailedPasswords | None:
    """The limit on this caller's failed password checks, or None when limits are off."""
    limit = Limits.from_config(config).failed_passwords
    if limit is None:
        return None
    return FailedPasswords(limit, _client_address(request))


AnonymousLimit = Depends(anonymous_limit)
SignedInLimit = Depends(signed_in_limit)
