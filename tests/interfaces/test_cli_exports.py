"""`creditpool members export` and `creditpool transfers export` on both engines: CSV that
parses, with exactly the org's rows, read a page at a time."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from creditpool.domain.amounts import credits
from creditpool.services import credits as credit_service
from creditpool.services import exports, groups, members, orgs, reports, usage, users
from creditpool.services.targets import Target
from creditpool.storage.schema import Transfer
from creditpool.storage.unit_of_work import UnitOfWork
from tests.interfaces.conftest import run, unique_email


def _class(uow: UnitOfWork) -> tuple[str, list[members.MemberView]]:
    """An org with 100 credits, its owner and five students (10 each), one of them removed,
    two in a group, one whose name would be a spreadsheet formula, and some usage."""
    owner = users.create_user(uow, email=unique_email("owner"), name="Iris")
    org = orgs.create_org(uow, name="Export class", owner_user_id=owner.id, actor="test")
    credit_service.record_purchase(uow, org.id, credits("100"), reference="PO-7", actor="test")
    names = ["Ada", "Bob", "=HYPERLINK(1)", "Dora", "Erin"]
    students = [
        members.add_member(
            uow,
            org.id,
            user_id=users.create_user(uow, email=unique_email(n[:3].lower()), name=n).id,
            actor="test",
        )
        for n in names
    ]
    credit_service.allocate_credits(
        uow, org.id, Target.members([s.id for s in students]), credits("10"), actor="test"
    )
    usage.charge_usage(
        uow, org.id, students[0].id, credits("2.5"), metrics={"renders": 3}, actor="farm"
    )
    group = groups.create_group(uow, org.id, "Piano", actor="test")
    groups.set_group_members(uow, org.id, group.id, [students[0].id, students[1].id])
    members.remove_member(uow, org.id, students[4].id, actor="test")
    return org.id, students


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _pages_read(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Make exports read pages of 2 rows, and record how many rows each read returned."""
    monkeypatch.setattr(exports, "PAGE", 2)
    real = getattr(module, name)
    sizes: list[int] = []

    def counted(*arguments: Any, **options: Any) -> Any:
        assert options["limit"] == 2
        page = real(*arguments, **options)
        sizes.append(len(page))
        return page

    monkeypatch.setattr(module, name, counted)
    return sizes


def test_members_export_lists_every_member_with_figures_a_page_at_a_time(
    cli_uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    org_id, students = _class(cli_uow)
    pages = _pages_read(monkeypatch, members, "list_members")

    ran = run("members", "export", org_id)

    assert ran.code == 0, ran
    rows = _csv(ran.out)
    assert pages == [2, 2, 2, 0]  # six members, read two at a time until a short page
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
    assert len(rows) == 6
    by_id = {row["id"]: row for row in rows}
    ada, bob, formula = (by_id[s.id] for s in students[:3])
    assert (ada["name"], ada["role"], ada["seat"], ada["status"]) == (
        "Ada",
        "member",
        "licensed",
        "active",
    )
    assert (ada["credits_available"], ada["credits_allocated"], ada["credits_used"]) == (
        "7.5",
        "10",
        "2.5",
    )
    assert ada["renders"] == "3"
    assert bob["renders"] == "0"
    assert ada["groups"] == bob["groups"] == "Piano"
    assert formula["name"] == "'=HYPERLINK(1)"  # inert in a spreadsheet
    assert by_id[students[4].id]["status"] == "removed"


def test_members_export_filters_by_status_and_writes_a_file(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, students = _class(cli_uow)

    removed = _csv(run("members", "export", org_id, "--status", "removed").out)
    active = _csv(run("members", "export", org_id, "--status", "active").out)

    assert [row["id"] for row in removed] == [students[4].id]
    assert len(active) == 5
    assert students[4].id not in {row["id"] for row in active}
    target = tmp_path / "members.csv"
    ran = run("members", "export", org_id, "--output", str(target))
    assert ran.code == 0
    assert ran.out == ""
    assert len(_csv(target.read_text(encoding="utf-8"))) == 6
    assert not (tmp_path / "members.csv.partial").exists()
    assert run("members", "export", org_id, "--status", "gone").code == 2


def test_transfers_export_lists_every_transfer_newest_first_a_page_at_a_time(
    cli_uow: UnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    org_id, students = _class(cli_uow)
    with cli_uow:
        ids = list(
            cli_uow.session.scalars(
                select(Transfer.id).where(Transfer.org_id == org_id).order_by(Transfer.id.desc())
            )
        )
    pages = _pages_read(monkeypatch, reports, "list_transfers")

    ran = run("transfers", "export", org_id)

    assert ran.code == 0, ran
    rows = _csv(ran.out)
    assert [row["id"] for row in rows] == ids  # each transfer once, newest first
    assert sum(pages) == len(ids)
    assert all(size == 2 for size in pages[:-1])
    purchase = rows[-1]
    assert (purchase["kind"], purchase["from"], purchase["to"], purchase["amount"]) == (
        "purchase",
        "purchases",
        "pool",
        "100",
    )
    assert purchase["reference"] == "PO-7"
    charged = next(row for row in rows if row["kind"] == "usage")
    assert (charged["member_id"], charged["amount"], charged["metrics"]) == (
        students[0].id,
        "2.5",
        '{"renders": 3}',
    )


def test_transfers_export_of_one_member_by_id_or_email(cli_uow: UnitOfWork) -> None:
    org_id, students = _class(cli_uow)
    ada = students[0]

    by_id = _csv(run("transfers", "export", org_id, "--member", ada.id).out)
    by_email = _csv(run("transfers", "export", org_id, "--member", ada.email.upper()).out)

    assert by_id == by_email
    assert sorted(row["kind"] for row in by_id) == ["allocation", "usage"]
    assert {row["member_id"] for row in by_id} == {ada.id}
    unknown = run("transfers", "export", org_id, "--member", "nobody@school.test")
    assert unknown.code == 1
    assert "error (not_found)" in unknown.err
    other_org = run("transfers", "export", "org_nothing")
    assert other_org.code == 1
    assert other_org.out == ""  # nothing written, not even a header
