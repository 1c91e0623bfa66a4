"""The fast path of a charge (services/charging.py) against the service's own reading of the
member, on each engine: it must answer exactly what `get_member` reads after it, whatever the
member carries (groups, metrics, an open hold, an expired one, a metered seat)."""

from __future__ import annotations

from creditpool.domain.amounts import credits
from creditpool.domain.errors import LimitExceeded
from creditpool.domain.policies import SettingsChange
from creditpool.domain.roles import Permission
from creditpool.services import audit, auth, groups, holds, members, reports
from creditpool.services.credits import allocate_credits
from creditpool.services.targets import Target
from creditpool.services.totals import MAX_TOTAL
from creditpool.services.usage import charge_usage
from creditpool.storage.schema import Account, ApiKey, Org
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import OPERATOR, add_members, make_org

KEY = "key:test"


def test_a_charge_answers_the_member_as_it_then_reads(uow: UnitOfWork, clock: FakeClock) -> None:
    metered = SettingsChange(rate_licensed=credits("1"))
    org = make_org(uow, purchase="100", settings=metered)
    student, other = add_members(uow, org.id, 2)
    allocate_credits(uow, org.id, Target.members([student.id]), credits("10"), actor=OPERATOR)
    group = groups.create_group(uow, org.id, "Evening class", actor=OPERATOR)
    groups.set_group_members(uow, org.id, group.id, [student.id, other.id])
    holds.place_hold(uow, org.id, student.id, credits("2"), expires_in=60, actor=KEY)
    holds.place_hold(uow, org.id, student.id, credits("1"), expires_in=3600, actor=KEY)
    clock.advance(minutes=5)  # the first hold has expired, unreleased

    first = charge_usage(uow, org.id, student.id, credits("0.5"), metrics={"renders": 2}, actor=KEY)
    assert first.member == members.get_member(uow, org.id, student.id)
    assert first.member.usage == {"renders": 2}
    assert first.member.groups == [group.id]
    assert first.member.credits_held == credits("1")  # the expired hold holds nothing
    assert first.member.credits_balance == credits("9.5")
    assert first.member.access_reason == "ok"
    assert (first.transfer.amount, first.transfer.member_id) == (credits("0.5"), student.id)

    second = charge_usage(uow, org.id, student.id, credits("1"), metrics={"frames": 24}, actor=KEY)
    assert second.member == members.get_member(uow, org.id, student.id)
    assert second.member.usage == {"renders": 2, "frames": 24}
    assert second.member.credits_used == credits("1.5")
    assert reports.get_balance(uow, org.id).used == credits("1.5")
    assert audit.audit(uow, org.id).clean


def test_a_charge_past_the_usage_account_limit_moves_nothing(uow: UnitOfWork) -> None:
    org = make_org(uow, purchase="100")
    (student,) = add_members(uow, org.id, 1)
    allocate_credits(uow, org.id, Target.members([student.id]), credits("10"), actor=OPERATOR)
    with uow:  # the org's usage account one micro-credit short of its limit
        usage = uow.session.get(Account, (org.id, "usage"))
        assert usage is not None
        usage.balance = MAX_TOTAL - 1
        uow.commit()
    before = members.get_member(uow, org.id, student.id)
    try:
        charge_usage(uow, org.id, student.id, credits("1"), actor=KEY)
    except LimitExceeded:
        pass
    else:
        raise AssertionError("the charge passed the usage account's limit")
    assert members.get_member(uow, org.id, student.id) == before
    assert reports.list_transfers(uow, org.id, member_id=student.id, limit=10)[0].kind != "usage"


def test_a_key_marked_used_commits_alone_not_what_a_reading_block_changed(
    clock: FakeClock, uow: UnitOfWork
) -> None:
    org = make_org(uow)
    key = auth.create_api_key(uow, org.id, name="vendor", scopes=["usage"], actor=OPERATOR)
    # A request's unit of work on the test's connection (whose outer transaction is undone).
    request = UnitOfWork(uow._session_factory, clock, for_request=True)
    auth.authorize_bearer(
        request, key.secret, org.id, Permission.READ, configured_operator_key=None
    )
    with request:  # a block that only reads, but changed a loaded row by mistake
        row = request.session.get(Org, org.id)
        assert row is not None
        row.name = "changed by a read"
    request.close()
    with uow:
        assert uow.session.get(Org, org.id).name == org.name  # type: ignore[union-attr]
        stored = uow.session.get(ApiKey, (org.id, key.id))
        assert stored is not None
        assert stored.last_used_at == clock.now()
