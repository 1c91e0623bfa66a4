"""`AsyncClient`: the API over non-blocking HTTP (asyncio or trio). Each endpoint is described
once (in the modules of calls) and bound here as a coroutine method with the same keyword-only
arguments; lists are `AsyncPages`, read with `async for`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio
import httpx2 as httpx

from creditpool.client import _credits, _families, _integrations, _members, _people
from creditpool.client._calls import Call, ListCall
from creditpool.client._errors import NetworkError
from creditpool.client._models import Page
from creditpool.client._transport import (
    Retrying,
    default_headers,
    idempotency_key_of,
    request_arguments,
    result_of,
    root_url,
    show_as_method,
)

P = ParamSpec("P")
T = TypeVar("T")


class AsyncPages(Generic[T]):
    """A list of the API: `async for` fetches page after page (following `next_cursor`);
    `await page()` fetches one."""

    def __init__(self, client: AsyncClient, call: ListCall[T]) -> None:
        self._client = client
        self._call = call

    async def page(self, cursor: str | None = None) -> Page[T]:
        """One page: the first, or the one after `cursor` (a page's `next_cursor`)."""
        return await self._client._send(self._call.page(cursor))

    async def __aiter__(self) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            page = await self.page(cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


def _one(
    build: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    @functools.wraps(build)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._send(build(*args, **kwargs))

    show_as_method(method, build)
    return method


def _many(
    build: Callable[P, ListCall[T]],
) -> Callable[Concatenate[AsyncClient, P], AsyncPages[T]]:
    @functools.wraps(build)
    def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> AsyncPages[T]:
        return AsyncPages(self, build(*args, **kwargs))

    show_as_method(method, build)
    return method


class AsyncClient:
    """A non-blocking client of one creditpool server, as the bearer of `token`.

    `base_url` is the server's address (`http://127.0.0.1:8000`); `timeout` bounds each
    attempt in seconds; `retries` is how many times a call is sent again after a network
    error or a 502/503/504. Use it as an async context manager, or await `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        self._retrying = Retrying(retries=retries)
        self._http = httpx.AsyncClient(
            base_url=root_url(base_url), headers=default_headers(token), timeout=timeout
        )

    async def aclose(self) -> None:
        """Close the connections this client keeps open."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        key = idempotency_key_of(call)  # the same on every attempt
        attempt = 0
        while True:
            request = self._http.build_request(**request_arguments(call, key))
            try:
                response = await self._http.send(request)
            except httpx.TransportError as error:
                wait = self._retrying.wait(attempt, None)
                if wait is None:
                    # Not the path: it may carry an invitation token or a join code.
                    tried = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise NetworkError(
                        f"no answer to a {call.method} ({tried}): {error!r}"
                    ) from error
            else:
                wait = self._retrying.wait(attempt, response)
                if not self._retrying.retried(response) or wait is None:
                    return result_of(call, response, sent_again=attempt > 0)
            await anyio.sleep(wait)
            attempt += 1

    # Users and tokens
    sign_up = _one(_people.sign_up)
    create_token = _one(_people.create_token)
    tokens = _many(_people.tokens)
    revoke_token = _one(_people.revoke_token)
    me = _one(_people.me)

    # Orgs
    create_org = _one(_people.create_org)
    orgs = _many(_people.orgs)
    get_org = _one(_people.get_org)
    update_settings = _one(_people.update_settings)
    record_purchase = _one(_people.record_purchase)
    pause = _one(_people.pause)
    resume = _one(_people.resume)
    balance = _one(_people.balance)
    transfers = _many(_people.transfers)
    list_lots = _many(_people.list_lots)
    create_api_key = _one(_people.create_api_key)
    api_keys = _many(_people.api_keys)
    revoke_api_key = _one(_people.revoke_api_key)

    # Invitations, members, groups, reset
    invite_link = _one(_members.invite_link)
    rotate_invite_link = _one(_members.rotate_invite_link)
    invite = _one(_members.invite)
    invitations = _many(_members.invitations)
    revoke_invitation = _one(_members.revoke_invitation)
    join = _one(_members.join)
    accept_invitation = _one(_members.accept_invitation)
    members = _many(_members.members)
    get_member = _one(_members.get_member)
    update_member = _one(_members.update_member)
    remove_member = _one(_members.remove_member)
    restore_member = _one(_members.restore_member)
    create_group = _one(_members.create_group)
    groups = _many(_members.groups)
    rename_group = _one(_members.rename_group)
    set_group_members = _one(_members.set_group_members)
    delete_group = _one(_members.delete_group)
    preview_reset = _one(_members.preview_reset)
    reset = _one(_members.reset)

    # Credits
    allocate = _one(_credits.allocate)
    revoke = _one(_credits.revoke)
    charge_usage = _one(_credits.charge_usage)
    place_hold = _one(_credits.place_hold)
    get_hold = _one(_credits.get_hold)
    capture_hold = _one(_credits.capture_hold)
    void_hold = _one(_credits.void_hold)
    charge_usage_batch = _one(_credits.charge_usage_batch)
    access = _one(_credits.access)

    # Version 1.2: pools inside pools
    create_child = _one(_families.create_child)
    list_children = _many(_families.list_children)
    allot_to_child = _one(_families.allot_to_child)
    take_back_from_child = _one(_families.take_back_from_child)

    # Version 1.1: readiness, webhooks, buying credits
    readiness = _one(_integrations.readiness)
    create_webhook = _one(_integrations.create_webhook)
    webhooks = _many(_integrations.webhooks)
    update_webhook = _one(_integrations.update_webhook)
    delete_webhook = _one(_integrations.delete_webhook)
    deliveries = _many(_integrations.deliveries)
    resend_delivery = _one(_integrations.resend_delivery)
    request_purchase = _one(_integrations.request_purchase)
    purchase_requests = _many(_integrations.purchase_requests)
    approve_purchase_request = _one(_integrations.approve_purchase_request)
    decline_purchase_request = _one(_integrations.decline_purchase_request)
    checkout = _one(_integrations.checkout)
