"""Sending webhook deliveries: what the worker does with the outbox.

A pass claims a few due deliveries, sends them (signed as Standard Webhooks asks, with the
`standardwebhooks` package), then records each outcome. Claiming is a lease: in one committed
transaction the worker pushes each claimed delivery's `next_attempt_at` a minute ahead, so no
other worker takes it meanwhile, and a worker killed while sending loses nothing: once the
lease runs out the delivery is due again. On PostgreSQL the claim reads with
`FOR UPDATE SKIP LOCKED`, so workers claiming at once take different rows instead of waiting;
on either engine the lease is written only where `next_attempt_at` is still what was read, so
two workers can never both claim one delivery.

A 2xx answer within 10 seconds (in all, from resolving the host to the answer's head) is a
success. Anything else (another status, a timeout, a refused connection) is tried again 5 s,
5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the attempt before; after the eighth attempt the
delivery is failed. Every attempt is recorded. The `webhook-timestamp` is the wall clock's
when the request leaves (the receiver checks it against its own clock); the schedule follows
the unit of work's clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from creditpool.services import webhook_secrets
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_id
from creditpool.storage.schema import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from creditpool.storage.unit_of_work import UnitOfWork

RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
TIMEOUT_SECONDS = 10.0
# Longer than a batch takes to send (its requests go out together, each within the timeout).
LEASE = timedelta(seconds=60)
BATCH = 10
MAX_BATCHES_PER_PASS = 20
USER_AGENT = "creditpool-webhooks/1"


@dataclass(frozen=True)
class Job:
    """A claimed delivery, with what sending it needs."""

    org_id: str
    delivery_id: str
    event_id: str
    url: str
    secret: str
    body: str
    leased_until: datetime


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the answer's status code, or the error that prevented one."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        """Whether the endpoint accepted the event (a 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class DeliveryReport:
    """What a pass did: deliveries accepted, and attempts that failed."""

    succeeded: int
    failed_attempts: int


Sender = Callable[[Job], Outcome]


def claim_due(uow: UnitOfWork, *, limit: int = BATCH) -> list[Job]:
    """Lease up to `limit` due deliveries to enabled, live endpoints, and commit the lease."""

    def apply() -> list[Job]:
        session, now = uow.session, uow.now
        query = (
            select(
                WebhookDelivery.org_id,
                WebhookDelivery.id,
                WebhookDelivery.event_id,
                WebhookDelivery.next_attempt_at,
                WebhookEndpoint.url,
                WebhookEndpoint.secret_encrypted,
                WebhookEvent.body,
            )
            .join(
                WebhookEndpoint,
                (WebhookEndpoint.org_id == WebhookDelivery.org_id)
                & (WebhookEndpoint.id == WebhookDelivery.endpoint_id),
            )
            .join(
                WebhookEvent,
                (WebhookEvent.org_id == WebhookDelivery.org_id)
                & (WebhookEvent.id == WebhookDelivery.event_id),
            )
            .where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                WebhookEndpoint.enabled.is_(True),
                WebhookEndpoint.deleted_at.is_(None),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        if uow.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        leased_until = now + LEASE
        jobs: list[Job] = []
        for org_id, delivery_id, event_id, due_at, url, stored, body in session.execute(query):
            taken = session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.org_id == org_id,
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at == due_at,
                )
                .values(next_attempt_at=leased_until)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                secret = webhook_secrets.decrypt(session, stored)
                jobs.append(Job(org_id, delivery_id, event_id, url, secret, body, leased_until))
        return jobs

    return run_write(uow, apply)


def signed_headers(job: Job, sent_at: datetime) -> dict[str, str]:
    """Return the Standard Webhooks headers of a delivery sent at `sent_at`."""
    signature = Webhook(job.secret).sign(msg_id=job.event_id, timestamp=sent_at, data=job.body)
    return {
        "webhook-id": job.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Refused(Exception):
    """The URL's host is not on the public internet: nothing is sent."""


@dataclass(frozen=True)
class Pinned:
    """A request aimed at the address that was checked, not at whatever the host name resolves
    to when connecting (a name may resolve to a public address for the check and to a private
    one for the connection: DNS rebinding)."""

    url: str
    host: str  # the Host header: the URL's own host (and port)
    sni_hostname: str | None  # for https: the name the certificate must carry


def pinned(url: str, address: str) -> Pinned:
    """Return the request for `url` sent to `address` (an IP address) instead of its host."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    ip = ipaddress.ip_address(address)
    at = f"[{ip}]" if ip.version == 6 else str(ip)
    port = f":{parts.port}" if parts.port is not None else ""
    host = parts.netloc.rsplit("@", 1)[-1]  # no user info in the Host header
    rewritten = urlunsplit((parts.scheme, at + port, parts.path, parts.query, ""))
    return Pinned(rewritten, host, hostname if parts.scheme.lower() == "https" else None)


async def public_address(url: str) -> str:
    """Resolve the URL's host; return its first address if every address it has is on the
    public internet. Refused otherwise (loopback, private, link-local, reserved, or none)."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(parts.hostname or "", parts.port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise Refused(f"{parts.hostname} does not resolve ({error})") from error
    addresses = [ipaddress.ip_address(str(entry[4][0]).split("%", 1)[0]) for entry in found]
    for ip in addresses:
        if not ip.is_global:
            raise Refused(f"{ip} is not a public address")
    if not addresses:
        raise Refused(f"{parts.hostname} has no address")
    return str(addresses[0])


async def _post(job: Job, *, private_networks: bool) -> int:
    """POST the job and return the answer's status; its body is never read."""
    url, headers = job.url, signed_headers(job, datetime.now(UTC))
    extensions: dict[str, Any] = {}
    if not private_networks:
        aimed = pinned(job.url, await public_address(job.url))
        url, headers["host"] = aimed.url, aimed.host
        if aimed.sni_hostname is not None:
            extensions["sni_hostname"] = aimed.sni_hostname
    async with (
        httpx2.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client,
        client.stream(
            "POST", url, content=job.body.encode(), headers=headers, extensions=extensions
        ) as response,
    ):
        return response.status_code


def http_sender(*, private_networks: bool = False) -> Sender:
    """Return a sender that POSTs each job and has its answer's status within TIMEOUT_SECONDS
    in all (resolving, connecting, sending and the answer's head; the body is never read), so
    one slow endpoint cannot outlast the lease. Unless `private_networks`, a URL whose host is
    not on the public internet is refused unsent (an owner must not reach into the
    installation's own network), and the request goes to the very address that was checked."""

    def send(job: Job) -> Outcome:
        started = time.monotonic()

        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            status = asyncio.run(
                asyncio.wait_for(_post(job, private_networks=private_networks), TIMEOUT_SECONDS)
            )
        except Refused as refusal:
            return Outcome(None, f"refused: {refusal}"[:500], elapsed())
        except TimeoutError:
            return Outcome(None, f"no answer within {TIMEOUT_SECONDS:g} s", elapsed())
        except (httpx2.HTTPError, OSError) as error:
            return Outcome(None, f"{type(error).__name__}: {error}"[:500], elapsed())
        return Outcome(status, None, elapsed())

    return send


def record_outcome(uow: UnitOfWork, job: Job, outcome: Outcome) -> None:
    """Record an attempt, and mark the delivery succeeded, due again later, or failed."""

    def apply() -> None:
        session, now = uow.session, uow.now
        session.add(
            WebhookAttempt(
                org_id=job.org_id,
                id=new_id("wha"),
                delivery_id=job.delivery_id,
                attempted_at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        row = session.get(WebhookDelivery, (job.org_id, job.delivery_id), with_for_update=True)
        if row is None:
            return
        row.attempts += 1
        row.last_status_code = outcome.status_code
        if row.status != "pending":
            return  # a worker that took it after this one's lease ran out decided already
        if outcome.succeeded:
            row.status, row.next_attempt_at = "succeeded", None
        elif row.attempts >= MAX_ATTEMPTS:
            row.status, row.next_attempt_at = "failed", None
        else:
            row.next_attempt_at = now + RETRY_DELAYS[row.attempts - 1]

    run_write(uow, apply)


def deliver_due(
    uow: UnitOfWork, send: Sender | None = None, *, private_networks: bool = False
) -> DeliveryReport:
    """Send every due delivery (a batch at a time, each batch's requests together), recording
    each attempt; `send` replaces the HTTP client; `private_networks` lets requests go to
    loopback and private addresses (see http_sender)."""
    jobs = claim_due(uow)
    if not jobs:  # the usual pass: one query, no client, no threads
        return DeliveryReport(0, 0)
    succeeded = failed = 0
    with ThreadPoolExecutor(BATCH, "webhooks") as pool:
        sender = send or http_sender(private_networks=private_networks)
        for _ in range(MAX_BATCHES_PER_PASS):
            for job, outcome in zip(jobs, pool.map(sender, jobs), strict=True):
                record_outcome(uow, job, outcome)
                if outcome.succeeded:
                    succeeded += 1
                else:
                    failed += 1
            jobs = claim_due(uow)
            if not jobs:
                break
    return DeliveryReport(succeeded, failed)
