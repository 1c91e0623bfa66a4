"""`AsyncClient` against a real server over a socket, on each engine: the same calls as the
blocking client, awaited; lists read with `async for` across pages, or one page awaited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from creditpool.client import (
    AsyncClient,
    Forbidden,
    InsufficientCredits,
    NotFound,
    SeatRatesChange,
    SettingsChange,
    Unauthenticated,
    UsageEvent,
)
from tests.client.conftest import OPERATOR_KEY, PASSWORD, People, Served, a_class, unique_email

pytestmark = pytest.mark.anyio


async def test_users_tokens_orgs_and_settings(served: Served, people: People) -> None:
    email = unique_email("async")
    async with AsyncClient(served.url) as anonymous:
        user = await anonymous.sign_up(email=email, password=PASSWORD, name="Asa Async")
        token = await anonymous.create_token(email=email, password=PASSWORD, name="script")
    async with AsyncClient(served.url, token=OPERATOR_KEY) as operator:
        org = await operator.create_org(name="Async school", owner_email=email)
        bought = await operator.record_purchase(org=org.id, amount=Decimal("50.000001"))
        assert bought.amount == Decimal("50.000001")
        assert org.id in [listed.id async for listed in operator.orgs()]
    async with AsyncClient(served.url, token=token.token) as asa:
        me = await asa.me()
        assert me.user.id == user.id
        assert [m.role for m in me.memberships] == ["owner"]
        assert [t.name async for t in asa.tokens()] == ["script"]
        settings = await asa.update_settings(
            org=org.id, change=SettingsChange(seat_rates=SeatRatesChange(licensed=Decimal(730)))
        )
        assert settings.seat_rates.licensed == Decimal(730)
        balance = await asa.balance(org=org.id, at=datetime.now(UTC) + timedelta(days=1))
        assert balance.burn_rate_per_day == Decimal(2)
        assert Decimal("47.9") < balance.available <= Decimal("48.000001")
        assert (await asa.pause(org=org.id)).paused is True
        assert (await asa.resume(org=org.id)).paused is False
        key = await asa.create_api_key(org=org.id, name="async product")
        assert [k.id async for k in asa.api_keys(org=org.id)] == [key.id]
        await asa.revoke_api_key(org=org.id, key_id=key.id)
        await asa.revoke_token(token_id=token.id)
        with pytest.raises(Unauthenticated):
            await asa.me()


async def test_members_groups_and_credits(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=3)
    ada, ben, cleo = school.student_ids
    async with AsyncClient(served.url, token=school.owner.token) as owner:
        link = await owner.invite_link(org=school.org)
        assert (await owner.rotate_invite_link(org=school.org)).code != link.code
        [invitation] = await owner.invite(org=school.org, emails=[unique_email("asked")])
        assert [i.id async for i in owner.invitations(org=school.org)] == [invitation.id]
        await owner.revoke_invitation(org=school.org, invitation_id=invitation.id)

        group = await owner.create_group(org=school.org, name="Evening")
        await owner.set_group_members(org=school.org, group=group.id, member_ids=[ada, ben])
        assert [g.member_count async for g in owner.groups(org=school.org)] == [2]
        renamed = await owner.rename_group(org=school.org, group=group.id, name="Late")
        assert renamed.name == "Late"
        given = await owner.allocate(org=school.org, group_id=group.id, amount=Decimal("7.5"))
        assert given.total == Decimal(15)
        back = await owner.revoke(org=school.org, member_ids=[ben], amount=Decimal("2.5"))
        assert back.members[0].credits_available == Decimal(5)
        with pytest.raises(InsufficientCredits):
            await owner.allocate(org=school.org, member_ids="all", amount=1000)

        assert (await owner.update_member(org=school.org, member=cleo, seat="unlicensed")).seat == (
            "unlicensed"
        )
        assert (await owner.remove_member(org=school.org, member=cleo)).status == "removed"
        assert (await owner.restore_member(org=school.org, member=cleo)).status == "active"
        await owner.delete_group(org=school.org, group=group.id)
        assert [g.id async for g in owner.groups(org=school.org)] == []
        assert (await owner.get_member(org=school.org, member=ada)).groups == []

    async with AsyncClient(served.url, token=school.key) as product:
        charged = await product.charge_usage(
            org=school.org, member=ada, amount=Decimal("0.5"), metrics={"renders": 2}
        )
        assert charged.member.credits_available == Decimal(7)
        hold = await product.place_hold(org=school.org, member=ada, amount=3, reference="long")
        assert (await product.get_hold(org=school.org, hold=hold.id)).reference == "long"
        captured = await product.capture_hold(org=school.org, hold=hold.id, amount=1)
        assert captured.member.credits_available == Decimal(6)
        other = await product.place_hold(org=school.org, member=ada, amount=1)
        assert (await product.void_hold(org=school.org, hold=other.id)).status == "voided"
        [result] = await product.charge_usage_batch(
            org=school.org, events=[UsageEvent(key="async-1", member_id=ben, amount=1)]
        )
        assert (result.status, result.code) == (201, None)
        access = await product.access(org=school.org, member=cleo)
        assert (access.access, access.reason) == (False, "unlicensed")
        with pytest.raises(NotFound):
            await product.get_member(org=school.org, member="mem_nobody")

    async with AsyncClient(served.url, token=school.students[0].token) as student:
        with pytest.raises(Forbidden):
            await student.preview_reset(org=school.org)
        mine = await student.transfers(org=school.org, member=ada, limit=2).page()
        assert len(mine.items) == 2
        assert mine.next_cursor is not None
        every = [t.kind async for t in student.transfers(org=school.org, member=ada, limit=2)]
        assert sorted(every) == ["allocation", "usage", "usage"]


async def test_a_reset_and_joining(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    async with AsyncClient(served.url, token=school.owner.token) as owner:
        await owner.allocate(org=school.org, member_ids="all", amount=2)
        preview = await owner.preview_reset(org=school.org)
        done = await owner.reset(org=school.org)
        assert (preview.removed, preview.revoked) == (done.removed, done.revoked) == (1, 2)
        code = done.invite_code
    async with AsyncClient(served.url, token=school.students[0].token) as student:
        back = await student.join(code=code)
        assert back.id == school.student_ids[0]  # the same member, active again
        assert back.credits_available == Decimal(0)
