"""The cast of `world` is what it says: a check of the fixtures every API test stands on."""

from __future__ import annotations

from tests.api.support import World


def test_world_has_an_org_with_its_people(world: World) -> None:
    members = world.api.call("GET", f"/orgs/{world.org_id}/members", token=world.owner).json()
    roles = sorted(member["role"] for member in members["items"])
    assert roles == ["manager", "member", "member", "owner"]
    balance = world.api.call("GET", f"/orgs/{world.org_id}/balance", token=world.usage_key).json()
    assert balance["available"] == "100"
