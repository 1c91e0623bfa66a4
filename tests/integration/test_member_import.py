"""services/member_import.py on both engines: the rules a CSV import follows over time
(expired and revoked invitations, a person who made an account before accepting), and how a
file is read (line numbers, header names, bounds)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from creditpool.domain.errors import InvalidInput
from creditpool.domain.model import Role, Seat
from creditpool.services import invitations, members
from creditpool.services.member_import import (
    Outcome,
    RosterRow,
    read_roster,
    start_import,
)
from creditpool.storage.schema import Invitation
from creditpool.storage.unit_of_work import UnitOfWork
from tests.support.clock import FakeClock
from tests.support.factories import make_org, make_user

PUBLIC_URL = "http://creditpool.test"


def _row(email: str, line: int = 2, **given: object) -> RosterRow:
    return RosterRow(
        line=line,
        email=email,
        name=str(given.get("name", "")),
        role=Role(str(given.get("role", "member"))),
        seat=Seat(str(given.get("seat", "licensed"))),
        groups=tuple(given.get("groups", ())),  # type: ignore[call-overload]
    )


def _statuses(uow: UnitOfWork, org_id: str, email: str) -> list[str]:
    with uow:
        return list(
            uow.session.scalars(
                select(Invitation.status)
                .where(Invitation.org_id == org_id, Invitation.email == email)
                .order_by(Invitation.created_at, Invitation.id)
            )
        )


def test_an_expired_invitation_is_sent_again_and_a_revoked_one_is_left_alone(
    uow: UnitOfWork, clock: FakeClock
) -> None:
    org = make_org(uow)
    importer = start_import(uow, org.id, by_email=None, public_url=PUBLIC_URL)
    late, turned_away = _row("late@school.test"), _row("no@school.test", line=3)
    assert importer.import_row(late).outcome is Outcome.INVITED
    assert importer.import_row(turned_away).outcome is Outcome.INVITED
    (sent,) = [i for i in invitations.list_invitations(uow, org.id) if i.email == "no@school.test"]
    invitations.revoke_invitation(uow, org.id, sent.id)  # an admin turned them away

    clock.advance(days=15)  # past the invitation's 14 days

    assert importer.import_row(late).outcome is Outcome.INVITED
    skipped = importer.import_row(turned_away)
    assert (skipped.outcome, skipped.detail) == (Outcome.SKIPPED, "their invitation was revoked")
    assert _statuses(uow, org.id, "late@school.test") == ["pending", "pending"]  # one expired
    assert _statuses(uow, org.id, "no@school.test") == ["revoked"]


def test_a_person_invited_who_made_an_account_is_enrolled_and_the_invitation_withdrawn(
    uow: UnitOfWork,
) -> None:
    org = make_org(uow)
    importer = start_import(uow, org.id, by_email=None, public_url=PUBLIC_URL)
    row = _row("ada@school.test", role="manager", seat="external", groups=("Piano",))
    assert importer.import_row(row).outcome is Outcome.INVITED
    make_user(uow, "Ada", email="ada@school.test")

    enrolled = importer.import_row(row)

    assert (enrolled.outcome, enrolled.groups_added) == (Outcome.ENROLLED, ("Piano",))
    (ada,) = [m for m in members.list_members(uow, org.id) if m.email == "ada@school.test"]
    assert (ada.role, ada.seat, len(ada.groups)) == (Role.MANAGER, Seat.EXTERNAL, 1)
    assert _statuses(uow, org.id, "ada@school.test") == ["revoked"]
    again = importer.import_row(row)
    assert (again.outcome, again.groups_added) == (Outcome.SKIPPED, ())


def test_a_refused_row_changes_nothing(uow: UnitOfWork) -> None:
    org = make_org(uow)
    manager = make_user(uow, "Mia")
    members.add_member(uow, org.id, user_id=manager.id, role=Role.MANAGER, actor="test")
    importer = start_import(uow, org.id, by_email=manager.email, public_url=PUBLIC_URL)
    make_user(uow, "Ada", email="ada@school.test")

    refused = importer.import_row(_row("ada@school.test", role="manager", groups=("Piano",)))

    assert (refused.outcome, refused.code) == (Outcome.REFUSED, "forbidden")
    assert [m.email for m in members.list_members(uow, org.id)].count("ada@school.test") == 0
    assert _statuses(uow, org.id, "ada@school.test") == []


def _read(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    roster = read_roster(io.BytesIO(text.encode("utf-8")))
    return (
        [(row.line, row.email) for row in roster.rows],
        [(problem.line, problem.reason) for problem in roster.problems],
    )


def test_rows_are_numbered_by_the_line_they_start_on() -> None:
    text = (
        "\ufeffE-mail,Name,Group\n"  # a spreadsheet's byte-order mark and its own names
        'ada@school.test,"Ada\nLovelace",Piano\n'  # a cell over lines 2 and 3
        "\n"
        "  ,  ,  \n"
        "bob@school.test,Bob,Piano;;Theory ; Piano\n"
        "cleo@school.test,Cleo,Piano,extra\n"
    )
    rows, problems = _read(text)
    assert rows == [(6, "bob@school.test")]
    assert problems == [
        (2, "a name cannot contain control or invisible formatting characters (found U+000A)"),
        (7, "4 cells where the first line names 3"),
    ]
    (bob,) = read_roster(io.BytesIO(text.encode())).rows
    assert bob.groups == ("Piano", "Theory")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"email\n\xff\xfe\n", "not UTF-8"),
        (b"email,email\na@school.test,b@school.test\n", "names a column twice"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        read_roster(io.BytesIO(data))
