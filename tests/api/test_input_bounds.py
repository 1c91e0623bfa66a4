"""Every input has a bound, and passing it is a 4xx problem, never a 500, changing nothing.

test_bad_input.py covers the fields of each body; this file covers the rest: metrics past their
count, size or name, JSON nested or numbers long enough to exhaust a parser, ids and keys far
longer than any real one, and a batch event's member id of any length.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import OPERATOR_KEY, World, problem


def _json(world: World, path: str, body: str, token: str) -> Any:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return world.api.client.post(f"/api/v1{path}", content=body, headers=headers)


def _figures(world: World) -> tuple[Any, ...]:
    api, org = world.api, world.org_id
    balance = api.call("GET", f"/orgs/{org}/balance", token=world.owner).json()
    transfers = api.call("GET", f"/orgs/{org}/transfers", token=world.owner).json()["items"]
    return balance["available"], balance["used"], len(transfers)


@pytest.mark.parametrize(
    ("label", "metrics"),
    [
        ("21 metrics", {f"m{number}": 1 for number in range(21)}),
        ("a metric past 2^53", {"frames": 2**53 + 1}),
        ("a metric name of 65", {"f" * 65: 1}),
        ("a metric name with a space", {"render time": 1}),
        ("a metric name with a right-to-left override", {"frames\u202e": 1}),
    ],
)
def test_metrics_past_their_bounds_are_refused(
    world: World, label: str, metrics: dict[str, int]
) -> None:
    api, org, ada = world.api, world.org_id, world.student_ids[0]
    api.call(
        "POST",
        f"/orgs/{org}/allocations",
        token=world.owner,
        json={"member_ids": [ada], "amount": "5"},
    )
    before = _figures(world)
    charge = {"amount": "1", "metrics": metrics}
    path = f"/orgs/{org}/members/{ada}/usage"
    problem(api.call("POST", path, token=world.usage_key, json=charge), 422, "validation_error")
    event = {"key": "e", "member_id": ada, "amount": "1", "metrics": metrics}
    batch = api.call("POST", f"/orgs/{org}/usage", token=world.usage_key, json={"events": [event]})
    assert batch.json()["results"][0]["code"] == "validation_error", label
    assert _figures(world) == before


def test_deep_json_and_long_numbers_are_refused_not_500(world: World) -> None:
    org = world.org_id
    before = _figures(world)
    for depth in (900, 100_000):
        nested = "[" * depth + "]" * depth
        refused = _json(world, f"/orgs/{org}/groups", '{"name": ' + nested + "}", world.owner)
        problem(refused, 422, "validation_error")
        event = '{"key": "k", "member_id": "m", "amount": "1", "metrics": ' + nested + "}"
        batch = _json(world, f"/orgs/{org}/usage", '{"events": [' + event + "]}", world.usage_key)
        assert batch.status_code in (200, 422), batch.text
        if batch.status_code == 200:
            assert batch.json()["results"][0]["code"] == "validation_error"
    digits = "1" + "0" * 5000
    problem(
        _json(world, f"/orgs/{org}/purchases", '{"amount": ' + digits + "}", OPERATOR_KEY),
        422,
        "validation_error",
    )
    assert _figures(world) == before


def test_ids_and_keys_far_past_their_length_are_refused_not_500(world: World) -> None:
    api, org = world.api, world.org_id
    long_id = "x" * 20_000
    problem(api.call("GET", f"/orgs/{long_id}", token=world.owner), 404, "not_found")
    problem(api.call("GET", f"/orgs/{org}/members/{long_id}", token=world.owner), 404, "not_found")
    problem(
        api.call(
            "POST",
            f"/orgs/{org}/purchases",
            token=OPERATOR_KEY,
            json={"amount": "1"},
            key="k" * 256,
        ),
        422,
        "validation_error",
    )
    events = [
        {"key": "long member", "member_id": long_id, "amount": "1"},
        {"key": "k" * 256, "member_id": world.student_ids[0], "amount": "1"},
    ]
    batch = api.call("POST", f"/orgs/{org}/usage", token=world.usage_key, json={"events": events})
    assert [(r["key"], r["code"]) for r in batch.json()["results"]] == [
        ("long member", "not_found"),
        (None, "validation_error"),
    ]
