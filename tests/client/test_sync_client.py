"""`Client` against a real server over a socket, on each engine: every call of version 1,
its answers as typed objects (amounts as Decimal, times aware), lists that follow their
cursors."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

import creditpool.client
from creditpool.client import (
    Alerts,
    AlertsChange,
    AutoAllocationChange,
    Balance,
    Client,
    Member,
    SeatRatesChange,
    SettingsChange,
    Transfer,
    Unauthenticated,
    UsageEvent,
)
from tests.client.conftest import (
    OPERATOR_KEY,
    PASSWORD,
    People,
    Served,
    a_class,
    a_person,
    unique_email,
)


def test_users_tokens_and_me(served: Served) -> None:
    email = unique_email("tokens")
    with Client(served.url) as anonymous:
        user = anonymous.sign_up(email=email, password=PASSWORD, name="Tess Token")
        assert (user.email, user.name) == (email, "Tess Token")
        assert user.created_at.tzinfo is not None
        daily = anonymous.create_token(
            email=email, password=PASSWORD, name="laptop", expires_in=86_400
        )
        lasting = anonymous.create_token(email=email, password=PASSWORD)
    assert daily.name == "laptop"
    assert daily.expires_at is not None
    assert timedelta(hours=23) < daily.expires_at - datetime.now(UTC) <= timedelta(days=1)
    assert lasting.expires_at is None

    with Client(served.url, token=daily.token) as tess:
        me = tess.me()
        assert (me.user.id, me.memberships) == (user.id, [])
        listed = {token.id: token for token in tess.tokens()}
        assert set(listed) == {daily.id, lasting.id}
        assert listed[daily.id].name == "laptop"
        tess.revoke_token(token_id=lasting.id)
        assert [token.id for token in tess.tokens()] == [daily.id]
    with Client(served.url, token=lasting.token) as revoked, pytest.raises(Unauthenticated):
        revoked.me()


def test_orgs_settings_purchases_pause_and_balance(served: Served) -> None:
    owner = a_person(served.url, "governor")
    with Client(served.url, token=OPERATOR_KEY) as operator:
        org = operator.create_org(
            name="Settings school",
            owner_email=owner.email,
            settings=SettingsChange(returnable=False, seat_rates=SeatRatesChange(licensed=365)),
        )
        assert org.settings.returnable is False
        assert org.settings.seat_rates.licensed == Decimal(365)
        bought = operator.record_purchase(org=org.id, amount=Decimal("100.5"), reference="PO-7")
        assert isinstance(bought, Transfer)
        assert (bought.kind, bought.amount, bought.reference) == (
            "purchase",
            Decimal("100.5"),
            "PO-7",
        )
        assert org.id in {listed.id for listed in operator.orgs()}

    with Client(served.url, token=owner.token) as governing:
        assert [m.org_id for m in governing.me().memberships] == [org.id]
        settings = governing.update_settings(
            org=org.id,
            change=SettingsChange(
                returnable=True,
                auto_allocation=AutoAllocationChange(
                    enabled=True, bundle=Decimal("2.5"), max_per_member=10
                ),
            ),
        )
        assert settings.returnable is True
        assert settings.auto_allocation.bundle == Decimal("2.5")
        assert settings.auto_allocation.max_per_member == Decimal(10)
        assert settings.seat_rates.licensed == Decimal(365)  # untouched
        alerted = governing.update_settings(
            org=org.id, change=SettingsChange(alerts=AlertsChange(low_balance=10, days_left=14))
        )
        assert alerted.alerts == Alerts(low_balance=Decimal(10), days_left=14)
        quiet = governing.update_settings(org=org.id, change=SettingsChange(alerts=AlertsChange()))
        assert quiet.alerts == Alerts(low_balance=None, days_left=None)
        assert quiet.auto_allocation.enabled is True  # untouched

        now = governing.balance(org=org.id)
        assert isinstance(now, Balance)
        assert now.purchased == Decimal("100.5")
        assert now.burn_rate_per_day == Decimal(1)  # the owner's licensed seat: 365 a year
        later = governing.balance(org=org.id, at=datetime.now(UTC) + timedelta(days=10))
        assert now.available - later.available > Decimal("9.9")
        assert later.depletes_at is not None
        assert later.depletes_at.tzinfo is not None

        paused = governing.pause(org=org.id)
        assert paused.paused is True
        assert governing.balance(org=org.id).burn_rate_per_day == Decimal(0)
        assert governing.resume(org=org.id).paused is False
        assert governing.get_org(org=org.id).name == "Settings school"


def test_api_keys_are_made_listed_and_revoked(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=0)
    with Client(served.url, token=school.owner.token) as governing:
        made = governing.create_api_key(org=school.org, name="second product")
        listed = {key.id: key for key in governing.api_keys(org=school.org)}
        assert listed[made.id].name == "second product"
        assert listed[made.id].scopes == ["usage"]
        with Client(served.url, token=made.key) as product:
            assert product.get_org(org=school.org).id == school.org
            governing.revoke_api_key(org=school.org, key_id=made.id)
            with pytest.raises(Unauthenticated):
                product.get_org(org=school.org)
        assert made.id not in {key.id for key in governing.api_keys(org=school.org)}


def test_invitations_joining_and_accepting(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=0)
    invited, joiner = people.students[:2]  # not members of this org yet
    with Client(served.url, token=school.owner.token) as governing:
        link = governing.invite_link(org=school.org)
        assert link.code in link.url
        rotated = governing.rotate_invite_link(org=school.org)
        assert rotated.code != link.code
        made = governing.invite(
            org=school.org, emails=[invited.email, unique_email("never")], seat="unlicensed"
        )
        assert [i.status for i in made] == ["pending", "pending"]
        assert {i.seat for i in made} == {"unlicensed"}
        pending = {i.id for i in governing.invitations(org=school.org, status="pending")}
        assert pending == {i.id for i in made}
        governing.revoke_invitation(org=school.org, invitation_id=made[1].id)
        assert [i.id for i in governing.invitations(org=school.org, status="pending")] == [
            made[0].id
        ]

    token = served.smtp.wait_for(invited.email, containing="/invitations/").token
    with Client(served.url, token=invited.token) as person:
        member = person.accept_invitation(token=token)
        assert (member.email, member.seat, member.status) == (invited.email, "unlicensed", "active")
    with Client(served.url, token=joiner.token) as person:
        joined = person.join(code=rotated.code)
        assert (joined.role, joined.seat) == ("member", "licensed")


def test_members_and_groups(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=3)
    ada, ben, cleo = school.student_ids
    with Client(served.url, token=school.owner.token) as governing:
        everyone = list(governing.members(org=school.org))
        assert {m.id for m in everyone} >= {ada, ben, cleo}
        assert all(isinstance(m, Member) for m in everyone)

        group = governing.create_group(org=school.org, name="Morning")
        group = governing.set_group_members(org=school.org, group=group.id, member_ids=[ada, ben])
        assert group.member_count == 2
        assert governing.rename_group(org=school.org, group=group.id, name="Early").name == "Early"
        assert [g.name for g in governing.groups(org=school.org)] == ["Early"]
        in_group = {m.id for m in governing.members(org=school.org, group=group.id)}
        assert in_group == {ada, ben}

        changed = governing.update_member(org=school.org, member=cleo, seat="external")
        assert changed.seat == "external"
        removed = governing.remove_member(org=school.org, member=cleo)
        assert removed.status == "removed"
        assert [m.id for m in governing.members(org=school.org, status="removed")] == [cleo]
        restored = governing.restore_member(org=school.org, member=cleo)
        assert (restored.status, restored.seat) == ("active", "external")

        governing.delete_group(org=school.org, group=group.id)
        assert list(governing.groups(org=school.org)) == []
        assert governing.get_member(org=school.org, member=ada).groups == []


def test_credits_move_and_usage_is_charged(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=2)
    ada, ben = school.student_ids
    with Client(served.url, token=school.owner.token) as governing:
        everyone = governing.allocate(org=school.org, member_ids="all", amount=Decimal("10.25"))
        assert everyone.total == Decimal("20.5")
        group = governing.create_group(org=school.org, name="Ada's")
        governing.set_group_members(org=school.org, group=group.id, member_ids=[ada])
        to_group = governing.allocate(org=school.org, group_id=group.id, amount=1)
        assert [(m.id, m.credits_available) for m in to_group.members] == [(ada, Decimal("11.25"))]
        taken = governing.revoke(org=school.org, member_ids=[ben], amount=Decimal("0.25"))
        assert taken.members[0].credits_available == Decimal(10)
        all_back = governing.revoke(org=school.org, member_ids=[ben])
        assert all_back.total == Decimal(10)

    with Client(served.url, token=school.key) as product:
        charged = product.charge_usage(
            org=school.org,
            member=ada,
            amount=Decimal("1.5"),
            metrics={"renders": 1, "frames": 240},
            reference="job-1",
        )
        assert charged.transfer.amount == Decimal("1.5")
        assert charged.transfer.metrics == {"renders": 1, "frames": 240}
        assert charged.member.credits_available == Decimal("9.75")
        assert charged.member.usage == {"renders": 1, "frames": 240}

        hold = product.place_hold(org=school.org, member=ada, amount=Decimal(4), expires_in=600)
        assert (hold.status, hold.amount) == ("pending", Decimal(4))
        assert product.get_hold(org=school.org, hold=hold.id).id == hold.id
        captured = product.capture_hold(org=school.org, hold=hold.id, amount=Decimal("2.5"))
        assert captured.member.credits_available == Decimal("7.25")
        other = product.place_hold(org=school.org, member=ada, amount=1)
        voided = product.void_hold(org=school.org, hold=other.id)
        assert voided.status == "voided"

        results = product.charge_usage_batch(
            org=school.org,
            events=[
                UsageEvent(key="batch-1", member_id=ada, amount=Decimal("0.25")),
                UsageEvent(key="batch-2", member_id=ben, amount=Decimal(1)),  # ben has nothing
            ],
        )
        assert [(r.key, r.status, r.code) for r in results] == [
            ("batch-1", 201, None),
            ("batch-2", 409, "insufficient_credits"),
        ]
        assert results[0].transfer_id is not None

        assert product.access(org=school.org, member=ada).access is True
        assert product.get_member(org=school.org, member=ada).credits_available == Decimal(7)


def test_lists_follow_their_cursors_and_give_one_page(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with Client(served.url, token=school.owner.token) as governing:
        for _ in range(5):
            governing.allocate(org=school.org, member_ids=[ada], amount=1)
        first = governing.transfers(org=school.org, member=ada, limit=2).page()
        assert len(first.items) == 2
        assert first.next_cursor is not None
        second = governing.transfers(org=school.org, member=ada, limit=2).page(first.next_cursor)
        assert {t.id for t in second.items}.isdisjoint(t.id for t in first.items)

        every = list(governing.transfers(org=school.org, member=ada, limit=2))  # three pages
        assert len(every) == 5
        assert len({t.id for t in every}) == 5
        assert [t.created_at for t in every] == sorted((t.created_at for t in every), reverse=True)
        kinds = {t.kind for t in governing.transfers(org=school.org, kind="purchase")}
        assert kinds == {"purchase"}


def test_a_reset_is_previewed_then_done(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=2)
    with Client(served.url, token=school.owner.token) as governing:
        governing.allocate(org=school.org, member_ids="all", amount=3)
        before = governing.invite_link(org=school.org).code
        preview = governing.preview_reset(org=school.org)
        assert (preview.removed, preview.revoked) == (2, Decimal(6))
        done = governing.reset(org=school.org)
        assert (done.removed, done.revoked) == (2, Decimal(6))
        assert done.invite_code != before
        assert governing.invite_link(org=school.org).code == done.invite_code
        assert [m.role for m in governing.members(org=school.org)] == ["owner"]
        assert governing.balance(org=school.org).available == Decimal(100)


def test_the_packages_example_runs_as_written(
    served: Served, people: People, capsys: pytest.CaptureFixture[str]
) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with Client(served.url, token=school.owner.token) as governing:
        governing.allocate(org=school.org, member_ids=[ada], amount=Decimal("10.5"))
    doc = creditpool.client.__doc__ or ""
    # The code between the docstring's title line and its first paragraph of prose.
    example = textwrap.dedent(doc.split("`AsyncClient` has")[0].split("\n", 1)[1])
    example = example.replace('"http://127.0.0.1:8000"', repr(served.url))
    exec(example, {"api_key": school.key, "org_id": school.org, "member_id": ada})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "9"  # 10.5 less 1.5
    assert f"{school.students[0].email} 9" in printed
