"""The calls of version 1.1 through the client against a real server, on each engine:
readiness, purchase requests, and webhooks delivered by serve's worker to a real receiver of
the test (its deliveries listed, one sent again with the same `webhook-id`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from creditpool.client import (
    AsyncClient,
    Client,
    Delivery,
    Readiness,
)
from tests.client.conftest import OPERATOR_KEY, People, Served, a_class

DELIVERED_WITHIN_SECONDS = 20.0  # serve's worker looks every 5 s


class Receiver(ThreadingHTTPServer):
    """An HTTP server of the test that answers 204 to every POST and keeps its headers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Keep)
        self.webhook_ids: list[str] = []
        self.arrived = threading.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks"

    def wait_for(self, count: int) -> list[str]:
        """The `webhook-id` of each POST, once `count` have come."""
        with self.arrived:
            came = self.arrived.wait_for(
                lambda: len(self.webhook_ids) >= count, DELIVERED_WITHIN_SECONDS
            )
        assert came, f"{len(self.webhook_ids)} of {count} deliveries came"
        return list(self.webhook_ids)


class _Keep(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what came."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.arrived:
            self.server.webhook_ids.append(self.headers.get("webhook-id", ""))
            self.server.arrived.notify_all()
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Run a Receiver for the duration of the block."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_readiness(served: Served) -> None:
    with Client(served.url) as anonymous:
        assert anonymous.readiness() == Readiness(database="ok", migrations="current")


def test_purchase_requests_are_asked_approved_and_declined(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=0, credits=Decimal(10))
    with Client(served.url, token=school.owner.token) as owner:
        first = owner.request_purchase(org=school.org, amount=Decimal("25.5"), note="term 2")
        second = owner.request_purchase(org=school.org, amount=40)
        assert (first.status, first.amount, first.note) == ("pending", Decimal("25.5"), "term 2")
        assert first.transfer_id is None
        pending = {r.id for r in owner.purchase_requests(org=school.org, status="pending")}
        assert pending == {first.id, second.id}
    with Client(served.url, token=OPERATOR_KEY) as operator:
        approved = operator.approve_purchase_request(
            org=school.org, request=first.id, reference="INV-9"
        )
        assert approved.status == "approved"
        assert approved.transfer_id is not None
        assert approved.decided_at is not None
        declined = operator.decline_purchase_request(
            org=school.org, request=second.id, reason="over budget"
        )
        assert (declined.status, declined.reason) == ("declined", "over budget")
    with Client(served.url, token=school.owner.token) as owner:
        assert owner.balance(org=school.org).purchased == Decimal("35.5")
        assert [r.id for r in owner.purchase_requests(org=school.org, status="declined")] == [
            second.id
        ]
        [bought] = [
            t
            for t in owner.transfers(org=school.org, kind="purchase")
            if t.id == approved.transfer_id
        ]
        assert bought.amount == Decimal("25.5")


def test_webhooks_are_managed_delivered_and_sent_again(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    with receiver() as hooks, Client(served.url, token=school.owner.token) as owner:
        made = owner.create_webhook(
            org=school.org, url=hooks.url, events=["org.paused"], description="ops"
        )
        assert made.secret.startswith("whsec_")
        assert made.enabled is True
        [listed] = owner.webhooks(org=school.org)
        assert (listed.id, listed.url, listed.events) == (made.id, hooks.url, ["org.paused"])
        assert not hasattr(listed, "secret")
        changed = owner.update_webhook(
            org=school.org, webhook=made.id, events=["allocation.created"], description="credits"
        )
        assert (changed.events, changed.description) == (["allocation.created"], "credits")

        owner.allocate(org=school.org, member_ids="all", amount=2)
        [event_id] = hooks.wait_for(1)
        delivered = _when_succeeded(owner, school.org, made.id)
        assert isinstance(delivered, Delivery)
        assert (delivered.event, delivered.event_id) == ("allocation.created", event_id)
        assert (delivered.attempts, delivered.last_status_code) == (1, 204)

        again = owner.resend_delivery(org=school.org, webhook=made.id, delivery=delivered.id)
        assert again.event_id == event_id
        assert again.id != delivered.id
        assert hooks.wait_for(2) == [event_id, event_id]  # the same webhook-id

        owner.delete_webhook(org=school.org, webhook=made.id)
        assert list(owner.webhooks(org=school.org)) == []


def _when_succeeded(owner: Client, org: str, webhook: str) -> Delivery:
    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        [delivery] = owner.deliveries(org=org, webhook=webhook)
        if delivery.status == "succeeded":
            return delivery
        time.sleep(0.2)  # the worker records the attempt just after the receiver answers
    pytest.fail("the delivery was not recorded as succeeded")


@pytest.mark.anyio
async def test_the_async_client_reaches_the_integration_calls(
    served: Served, people: People
) -> None:
    school = a_class(served.url, people, students=0)
    async with AsyncClient(served.url) as anonymous:
        assert (await anonymous.readiness()).database == "ok"
    async with AsyncClient(served.url, token=school.owner.token) as owner:
        made = await owner.create_webhook(
            org=school.org, url="https://example.test/hooks", events=["usage.recorded"]
        )
        updated = await owner.update_webhook(org=school.org, webhook=made.id, enabled=False)
        assert updated.enabled is False
        assert [w.id async for w in owner.webhooks(org=school.org)] == [made.id]
        assert [d async for d in owner.deliveries(org=school.org, webhook=made.id)] == []
        await owner.delete_webhook(org=school.org, webhook=made.id)
        asked = await owner.request_purchase(org=school.org, amount=Decimal("0.5"))
    async with AsyncClient(served.url, token=OPERATOR_KEY) as operator:
        approved = await operator.approve_purchase_request(org=school.org, request=asked.id)
        assert approved.status == "approved"
        assert [r.status async for r in operator.purchase_requests(org=school.org)] == ["approved"]
