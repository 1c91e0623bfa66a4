"""A write whose answer is lost (the connection dropped, or a 503 in its place) is sent again
by the client with the same Idempotency-Key, and the server applies it once: through a real
proxy (faulty_proxy.py) in front of a real server, on each engine, sync and async."""

from __future__ import annotations

from decimal import Decimal

import pytest

from creditpool.client import AsyncClient, Client, NetworkError, Unavailable
from tests.client.conftest import People, Served, a_class
from tests.client.faulty_proxy import Fault, faulty_proxy
from tests.support.server import free_port


@pytest.mark.parametrize("fault", ["drop", "503 after", "503 before"])
def test_a_charge_retried_after_a_lost_answer_is_applied_once(
    served: Served, people: People, fault: Fault
) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with Client(served.url, token=school.owner.token) as owner:
        owner.allocate(org=school.org, member_ids=[ada], amount=10)
    with faulty_proxy(served.url) as proxy, Client(proxy.url, token=school.key) as product:
        proxy.faults.append(fault)
        charged = product.charge_usage(org=school.org, member=ada, amount=Decimal("2.5"))

    first, again = (seen for seen in proxy.seen if seen.method == "POST")
    assert (first.fault, again.fault) == (fault, None)
    assert first.idempotency_key is not None
    assert again.idempotency_key == first.idempotency_key
    with Client(served.url, token=school.owner.token) as governing:
        usage = list(governing.transfers(org=school.org, member=ada, kind="usage"))
        assert [transfer.id for transfer in usage] == [charged.transfer.id]
        assert governing.balance(org=school.org).used == Decimal("2.5")


def test_the_callers_key_is_the_one_sent_again(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    with faulty_proxy(served.url) as proxy, Client(proxy.url, token=school.owner.token) as owner:
        proxy.faults.append("drop")
        owner.allocate(org=school.org, member_ids="all", amount=3, idempotency_key="allot-once")
        again = owner.allocate(
            org=school.org, member_ids="all", amount=3, idempotency_key="allot-once"
        )
    keys = [seen.idempotency_key for seen in proxy.seen if seen.method == "POST"]
    assert keys == ["allot-once"] * 3
    assert again.members[0].credits_available == Decimal(3)  # given once, replayed twice


def test_a_delete_or_patch_whose_answer_is_lost_is_done_once(
    served: Served, people: People
) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with faulty_proxy(served.url) as proxy, Client(proxy.url, token=school.owner.token) as owner:
        group = owner.create_group(org=school.org, name="Short-lived")
        proxy.faults.append("drop")
        owner.delete_group(org=school.org, group=group.id)  # the retry finds it gone: done
        proxy.faults.append("drop")
        changed = owner.update_member(org=school.org, member=ada, seat="external")
        assert list(owner.groups(org=school.org)) == []
    assert changed.seat == "external"
    writes = [(seen.method, seen.fault) for seen in proxy.seen if seen.method != "GET"]
    assert writes == [
        ("POST", None),
        ("DELETE", "drop"),
        ("DELETE", None),
        ("PATCH", "drop"),
        ("PATCH", None),
    ]


def test_retries_are_bounded(served: Served, people: People) -> None:
    school = a_class(served.url, people, students=1)
    [ada] = school.student_ids
    with Client(served.url, token=school.owner.token) as owner:
        owner.allocate(org=school.org, member_ids=[ada], amount=10)
    with (
        faulty_proxy(served.url) as proxy,
        Client(proxy.url, token=school.key, retries=2) as product,
    ):
        proxy.faults.extend(["503 before"] * 3)
        with pytest.raises(Unavailable) as unavailable:
            product.charge_usage(org=school.org, member=ada, amount=1)
    assert unavailable.value.retry_after == 0.0
    assert [seen.fault for seen in proxy.seen] == ["503 before"] * 3
    with Client(served.url, token=school.key) as product:
        assert product.get_member(org=school.org, member=ada).credits_used == Decimal(0)

    nowhere = f"http://127.0.0.1:{free_port()}"
    with Client(nowhere, retries=1) as lost, pytest.raises(NetworkError) as no_answer:
        lost.me()
    assert no_answer.value.status is None
    assert "(2 attempts)" in no_answer.value.detail
    with Client(nowhere, retries=0) as lost, pytest.raises(NetworkError) as secret_path:
        lost.accept_invitation(token="inv_secret-token")
    assert "secret-token" not in str(secret_path.value)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["drop", "503 after"])
async def test_the_async_client_retries_a_lost_allotment_once(
    served: Served, people: People, fault: Fault
) -> None:
    school = a_class(served.url, people, students=2)
    with faulty_proxy(served.url) as proxy:
        async with AsyncClient(proxy.url, token=school.owner.token) as owner:
            proxy.faults.append(fault)
            allotted = await owner.allocate(org=school.org, member_ids="all", amount=4)
            assert allotted.total == Decimal(8)
            balance = await owner.balance(org=school.org)
    assert balance.allocated == Decimal(8)  # not 16
    first, again = (seen for seen in proxy.seen if seen.method == "POST")
    assert first.fault == fault
    assert again.idempotency_key == first.idempotency_key
