"""What the sync and async clients share about sending a call: the request, when to retry,
and reading the answer.

Retries: a call is sent again after a network error (refused, dropped, timed out) or a
502/503/504 answer, at most `retries` times, waiting 0.5 s, 1 s, 2 s… (up to 8 s) or what
the server's Retry-After says. Every POST carries an Idempotency-Key, the caller's or one
made for the call, and each retry sends the same key: a write the server applied before the
answer was lost is answered again from the first result, never applied twice. PATCH and PUT
are idempotent by nature; a DELETE sent again that finds the thing gone counts as done.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import httpx2 as httpx

from creditpool.client._calls import Call, nothing
from creditpool.client._errors import error_from_response, retry_after_seconds

T = TypeVar("T")

API_PREFIX = "/api/v1"
RETRIED_STATUSES = frozenset({502, 503, 504})


def _client_version() -> str:
    try:
        return version("creditpool")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0"


USER_AGENT = f"creditpool-client/{_client_version()}"


@dataclass(frozen=True)
class Retrying:
    """How often and how long to wait before sending a call again."""

    retries: int = 2
    first_wait: float = 0.5
    longest_wait: float = 8.0
    # A server asking for a longer pause than this is not waited for: the error goes to the
    # caller, with its retry_after.
    longest_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be 0 or more")

    def wait(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before sending again after failed attempt number `attempt` (0 the
        first), or None when the call should fail now."""
        if attempt >= self.retries:
            return None
        if response is not None:
            said = retry_after_seconds(response.headers.get("retry-after"))
            if said is not None:
                return None if said > self.longest_retry_after else said
        return min(self.first_wait * 2.0**attempt, self.longest_wait)

    def retried(self, response: httpx.Response) -> bool:
        """Whether this answer says "try again" rather than give a result."""
        return response.status_code in RETRIED_STATUSES


def root_url(base_url: str) -> str:
    """The server's root from what the caller gave (with or without the /api/v1 part)."""
    url = base_url.rstrip("/")
    if url.endswith(API_PREFIX):
        url = url[: -len(API_PREFIX)]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    return url


def default_headers(token: str | None) -> dict[str, str]:
    """The headers of every request: who calls, and what it reads."""
    headers = {"accept": "application/json", "user-agent": USER_AGENT}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def idempotency_key_of(call: Call[Any]) -> str | None:
    """The key a call carries on every attempt: the caller's, else a new one for a POST."""
    if call.idempotency_key is not None:
        return call.idempotency_key
    return f"cpc-{uuid.uuid4()}" if call.method == "POST" else None


def request_arguments(call: Call[Any], idempotency_key: str | None) -> dict[str, Any]:
    """The arguments of `build_request` for one attempt of a call."""
    headers = {} if idempotency_key is None else {"idempotency-key": idempotency_key}
    arguments: dict[str, Any] = {
        "method": call.method,
        "url": call.path if call.root else f"{API_PREFIX}{call.path}",
        "params": call.query,
        "headers": headers,
    }
    if call.body is not None:
        arguments["json"] = call.body
    return arguments


def result_of(call: Call[T], response: httpx.Response, *, sent_again: bool = False) -> T:
    """The call's result from its answer; the error of its code when it failed.

    A DELETE sent again that finds nothing to delete is done: the attempt whose answer was
    lost deleted it.
    """
    gone = call.method == "DELETE" and response.status_code == 404 and call.parse is nothing
    if sent_again and gone:
        return call.parse(None)
    if response.status_code >= 300:  # redirects are not followed: a base_url to fix
        raise error_from_response(response)
    body = response.json() if response.content else None
    return call.parse(body)


def show_as_method(method: Callable[..., Any], build: Callable[..., Any]) -> None:
    """Give a client method the signature help() and IDEs show: `self`, then the endpoint's
    keyword-only arguments (not the description of a call its builder returns)."""
    own = inspect.signature(build)
    itself = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__dict__["__signature__"] = own.replace(
        parameters=[itself, *own.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
