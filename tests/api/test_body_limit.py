"""Request bodies over the size limit are refused with 413 before they are read whole.

In process, the TestClient declares a Content-Length; against the real server, a streamed
(chunked) body has none, so the limit must count the bytes as they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx

from creditpool.config import Config
from tests.api.support import OPERATOR_KEY, PASSWORD, Api, World, problem
from tests.support.server import running_server

LIMIT = Config().max_body_bytes  # 1 MiB
CHUNK = 64 * 1024


def padded(document: dict[str, object], size: int) -> bytes:
    """Return `document` as JSON padded with spaces (still valid JSON) to `size` bytes."""
    text = json.dumps(document).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


def post(api: Api, path: str, body: bytes, token: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return api.client.post(f"/api/v1{path}", content=body, headers=headers)


def purchased(api: Api, world: World) -> str:
    balance = api.call("GET", f"/orgs/{world.org_id}/balance", token=world.owner).json()
    return str(balance["purchased"])


def test_a_body_over_the_limit_is_refused_with_413_and_changes_nothing(
    api: Api, world: World
) -> None:
    path = f"/orgs/{world.org_id}/purchases"
    too_large = padded({"amount": "5"}, LIMIT + 1)
    refused = post(api, path, too_large, OPERATOR_KEY)
    body = problem(refused, 413, "payload_too_large")
    assert "1,048,576 bytes" in body["detail"]
    assert purchased(api, world) == "100"
    # One byte less is read as usual.
    accepted = post(api, path, padded({"amount": "5"}, LIMIT), OPERATOR_KEY)
    assert accepted.status_code == 201, accepted.text
    assert purchased(api, world) == "105"


def test_a_streamed_body_is_counted_as_it_arrives(api: Api, world: World) -> None:
    body = padded({"amount": "5"}, 3 * LIMIT)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]

    refused = api.client.post(
        f"/api/v1/orgs/{world.org_id}/purchases",
        content=chunks(),
        headers={"content-type": "application/json", "authorization": f"Bearer {OPERATOR_KEY}"},
    )
    problem(refused, 413, "payload_too_large")
    assert purchased(api, world) == "100"


def test_batch_usage_may_send_four_times_the_limit(api: Api, world: World) -> None:
    path = f"/orgs/{world.org_id}/usage"
    event = {"key": "e-1", "member_id": world.student_ids[0], "amount": "0"}
    allowed = post(api, path, padded({"events": [event]}, 3 * LIMIT), world.usage_key)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["results"][0]["code"] == "invalid_amount"  # read, then judged
    refused = post(api, path, padded({"events": [event]}, 4 * LIMIT + 1), world.usage_key)
    problem(refused, 413, "payload_too_large")
    # The larger limit is the batch's alone: a single charge keeps the usual one.
    single = f"/orgs/{world.org_id}/members/{world.student_ids[0]}/usage"
    problem(
        post(api, single, padded({"amount": "1"}, 2 * LIMIT), world.usage_key),
        413,
        "payload_too_large",
    )


def test_a_page_form_over_the_limit_is_refused_with_413(api: Api) -> None:
    form = {"email": "nobody@example.test", "password": "x" * (LIMIT + 1)}
    refused = api.client.post("/sign-in", data=form)
    problem(refused, 413, "payload_too_large")


def test_the_real_server_refuses_a_chunked_body_before_reading_it_whole(tmp_path: Path) -> None:
    total = 32 * LIMIT
    sent = 0
    sign_up = {"email": "ada@example.test", "password": PASSWORD, "name": "Ada"}
    body = padded(sign_up, total)

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for start in range(0, len(body), CHUNK):
            sent += CHUNK
            yield body[start : start + CHUNK]

    with running_server(tmp_path) as server, server.client() as client:
        refused = client.post(
            "/users", content=chunks(), headers={"content-type": "application/json"}
        )
        problem(refused, 413, "payload_too_large")
        # The server stopped reading long before the end of the body.
        assert sent < total // 2
        # Nothing was created: the same sign-up, small, is the first one.
        assert client.post("/users", json=sign_up).status_code == 201
