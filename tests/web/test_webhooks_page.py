"""Webhooks and alerts in the browser: the owner adds an endpoint (its secret shown once), sets
an alert threshold, pauses the org, sees the delivery that `serve`'s worker sent to a real
local receiver (which checks its signature), resends it, then disables and deletes the
endpoint. A stranger to the org is shown nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.server import Server
from tests.support.webhook_receiver import Receiver, webhook_receiver
from tests.web.conftest import ARTIFACTS, People, operator_site
from tests.web.steps import open_org, sign_in_operator, sign_up

WAIT_SECONDS = 30  # the worker passes every 5 seconds


def _wait_for_deliveries(page: Page, receiver: Receiver, succeeded: int) -> None:
    """Reload the page until it lists `succeeded` deliveries that succeeded."""
    for _ in range(WAIT_SECONDS * 2):
        page.reload()
        if page.locator('td[data-status="succeeded"]').count() == succeeded:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"not delivered in time; the receiver got {receiver.received}")


@pytest.fixture
def site(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Server]:
    """The server, letting webhooks go to the receiver on 127.0.0.1."""
    environment = {"CREDITPOOL_WEBHOOK_PRIVATE_NETWORKS": "on"}
    with operator_site(tmp_path, migrated_sqlite, environment=environment) as server:
        yield server


def test_the_owner_adds_an_endpoint_sees_a_delivery_and_resends_it(
    people: People, site: Server
) -> None:
    owner = people.new()
    sign_up(owner, "Olga Owner", "olga@hooks.test")
    operator = people.new()
    sign_in_operator(operator)
    org = open_org(operator, "Hook class", "olga@hooks.test")

    with webhook_receiver() as receiver:
        owner.goto(f"/orgs/{org}")
        owner.get_by_role("link", name="Webhooks and low-credit alerts").click()
        expect(owner.get_by_role("heading", name="Webhooks and alerts")).to_be_visible()

        owner.get_by_label("URL (http:// or https://)").fill(receiver.url)
        owner.get_by_label("Description").fill("render farm")
        owner.get_by_label("org.paused").check()
        owner.get_by_label("org.resumed").check()
        owner.get_by_role("button", name="Add endpoint").click()
        expect(owner.get_by_role("status").first).to_contain_text("Endpoint added")
        secret = owner.locator("#new-secret").input_value()
        assert secret.startswith("whsec_")
        receiver.secret = secret
        owner.goto(f"/orgs/{org}/webhooks")
        expect(owner.locator("#new-secret")).to_have_count(0)  # shown once only
        expect(owner.locator("[data-endpoint]")).to_have_count(1)

        owner.get_by_label("Below (credits)").fill("10")
        owner.get_by_role("button", name="Save alerts").click()
        expect(owner.get_by_role("status")).to_have_text("Alerts saved.")
        expect(owner.get_by_label("Below (credits)")).to_have_value("10")

        owner.goto(f"/orgs/{org}")
        owner.get_by_role("button", name="Pause the org").click()
        owner.goto(f"/orgs/{org}/webhooks")
        _wait_for_deliveries(owner, receiver, 1)
        [sent] = receiver.received
        assert sent.verified
        assert sent.event["type"] == "org.paused"
        row = owner.locator("tr[data-delivery]")
        expect(row).to_contain_text("org.paused")
        expect(row).to_contain_text("200")

        owner.get_by_role("button", name=f"Resend org.paused {sent.webhook_id}").click()
        expect(owner.get_by_role("status")).to_have_text(
            "The event will be sent again in a moment."
        )
        _wait_for_deliveries(owner, receiver, 2)
        assert [item.webhook_id for item in receiver.received] == [sent.webhook_id] * 2
        assert all(item.verified for item in receiver.received)
        ARTIFACTS.parent.mkdir(parents=True, exist_ok=True)
        owner.screenshot(path=str(ARTIFACTS.parent / "webhook-deliveries.png"), full_page=True)

        owner.get_by_role("button", name="Disable").click()
        expect(owner.locator("[data-endpoint] .badge.warn")).to_have_text("disabled")
        owner.once("dialog", lambda dialog: dialog.accept())
        owner.get_by_role("button", name="Delete").click()
        expect(owner.get_by_text("No endpoints yet")).to_be_visible()

    stranger = people.new()
    sign_up(stranger, "Sam Stranger", "sam@elsewhere.test")
    answer = stranger.goto(f"/orgs/{org}/webhooks")
    assert answer is not None
    assert answer.status == 404
