"""`creditpool members import ORG FILE.csv` on both engines: people with an account are
enrolled, the others invited; bad rows are reported by line while the good ones apply; a
second run creates nothing; a file that cannot be imported changes nothing and exits 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from creditpool.domain.model import Role
from creditpool.services import groups, invitations, member_import, members, orgs, users
from creditpool.storage.schema import Group, GroupMember, Invitation, MailMessage, Member, User
from creditpool.storage.unit_of_work import UnitOfWork
from tests.interfaces.conftest import PUBLIC_URL, run, unique_email


def _org(uow: UnitOfWork) -> tuple[str, str]:
    """A new org and its owner's address."""
    owner = users.create_user(uow, email=unique_email("owner"), name="Iris Shaw")
    org = orgs.create_org(uow, name="Piano class", owner_user_id=owner.id, actor="test")
    return org.id, owner.email


def _state(uow: UnitOfWork, org_id: str) -> dict[str, object]:
    """Everything an import may create in the org, counted, and who is in which group."""
    with uow:
        session = uow.session

        def count(org_column: Any) -> int:
            return int(session.scalar(select(func.count()).where(org_column == org_id)) or 0)

        in_groups = session.execute(
            select(User.email, Group.name)
            .join(Member, Member.user_id == User.id)
            .join(
                GroupMember,
                (GroupMember.org_id == Member.org_id) & (GroupMember.member_id == Member.id),
            )
            .join(Group, (Group.org_id == GroupMember.org_id) & (Group.id == GroupMember.group_id))
            .where(Member.org_id == org_id)
        ).all()
        return {
            "members": count(Member.org_id),
            "invitations": count(Invitation.org_id),
            "groups": count(Group.org_id),
            "mail": count(MailMessage.org_id),
            "in_groups": sorted((email, name) for email, name in in_groups),
        }


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _member(uow: UnitOfWork, org_id: str, email: str) -> tuple[str, str, str] | None:
    """The role, seat and status of the address's membership, if it has one."""
    with uow:
        row = uow.session.execute(
            select(Member.role, Member.seat, Member.status)
            .join(User, User.id == Member.user_id)
            .where(Member.org_id == org_id, User.email == email)
        ).one_or_none()
        return None if row is None else (row.role, row.seat, row.status)


def _invitation(uow: UnitOfWork, org_id: str, email: str) -> tuple[str, str, str, str | None]:
    """The role, seat, status and sender of the address's one invitation."""
    with uow:
        row = uow.session.execute(
            select(
                Invitation.role, Invitation.seat, Invitation.status, Invitation.invited_by
            ).where(Invitation.org_id == org_id, Invitation.email == email)
        ).one()
        return row.role, row.seat, row.status, row.invited_by


def test_an_import_enrols_account_holders_invites_the_others_and_reports_bad_rows(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, owner = _org(cli_uow)
    ada = users.create_user(cli_uow, email=unique_email("ada"), name="Ada")
    bob, dora = unique_email("bob"), unique_email("dora")
    roster = _write(
        tmp_path / "class.csv",
        "Email,Name,Role,Seat,Groups",
        f"{ada.email.upper()},Ada Lovelace,member,licensed,Piano; Theory",
        f"{bob},Bob Stone,manager,external,Piano",
        "not-an-address,Nobody,member,licensed,",
        f"{unique_email('carl')},Carl,owner,licensed,",
        f"{dora},Dora,,unlicensed,",
        f"{unique_email('erin')},Erin,member,golden,",
        f"{ada.email},Ada again,,,",
    )

    ran = run("members", "import", org_id, str(roster))

    assert ran.code == 1, ran
    assert ran.out == "7 rows: 1 enrolled, 2 invited, 0 skipped, 4 bad (lines 4, 5, 7, 8)\n"
    # Each bad row by its line and reason, in the order of the file.
    assert "line 4  error (validation_error): 'not-an-address' is not an e-mail address" in ran.err
    assert "line 5  error (validation_error): nobody becomes owner by an import" in ran.err
    assert "line 7  error (validation_error): 'golden' is not a seat" in ran.err
    assert f"line 8  error (validation_error): {ada.email} is on line 2 already" in ran.err
    assert f"line 2  Ada Lovelace <{ada.email}>  enrolled as a member (licensed)" in ran.err
    assert f"line 3  Bob Stone <{bob}>  invited as a manager (external)" in ran.err
    assert "6/7 rows" not in ran.err
    assert "7/7 rows" in ran.err

    # The good rows applied: Ada enrolled with her groups, Bob and Dora invited by mail.
    assert _member(cli_uow, org_id, ada.email) == ("member", "licensed", "active")
    state = _state(cli_uow, org_id)
    assert state["in_groups"] == [(ada.email, "Piano"), (ada.email, "Theory")]
    assert state["members"] == 2  # the owner and Ada
    sender = f"user:{users.find_user(cli_uow, owner).id}"
    assert _invitation(cli_uow, org_id, bob) == ("manager", "external", "pending", sender)
    assert _invitation(cli_uow, org_id, dora) == ("member", "unlicensed", "pending", sender)
    with cli_uow:
        mailed = set(
            cli_uow.session.scalars(
                select(MailMessage.to_address).where(MailMessage.org_id == org_id)
            )
        )
    assert mailed == {bob, dora}
    assert _member(cli_uow, org_id, bob) is None  # invited is not enrolled


def test_a_second_run_creates_nothing_and_says_what_it_skipped(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, _ = _org(cli_uow)
    ada = users.create_user(cli_uow, email=unique_email("ada"), name="Ada")
    bob = unique_email("bob")
    roster = _write(
        tmp_path / "class.csv",
        "email,name,role,seat,groups",
        f"{ada.email},Ada,member,licensed,Piano",
        f"{bob},Bob,member,licensed,Piano;Theory",
        "bad,Bad,member,licensed,",
    )
    first = run("members", "import", org_id, str(roster))
    assert first.out.startswith("3 rows: 1 enrolled, 1 invited, 0 skipped, 1 bad"), first
    before = _state(cli_uow, org_id)

    again = run("members", "import", org_id, str(roster))

    assert _state(cli_uow, org_id) == before
    assert again.out == "3 rows: 0 enrolled, 0 invited, 2 skipped, 1 bad (line 4)\n"
    assert f"line 2  Ada <{ada.email}>  skipped: already a member" in again.err
    assert f"line 3  Bob <{bob}>  skipped: invited already, until " in again.err
    assert "line 4  error (validation_error)" in again.err
    assert again.code == 1  # the bad row is still bad


def test_an_invited_person_joins_the_rows_groups_on_accepting(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, _ = _org(cli_uow)
    bob = unique_email("bob")
    roster = _write(tmp_path / "class.csv", "email,groups,seat", f"{bob},Piano;Theory,unlicensed")
    invited = run("members", "import", org_id, str(roster))
    assert invited.code == 0
    assert invited.out == "1 row: 0 enrolled, 1 invited, 0 skipped, 0 bad\n"
    assert f"line 2  {bob}  invited as a member (unlicensed); joins its groups on" in invited.err
    assert _state(cli_uow, org_id)["groups"] == 2  # made now, empty until Bob joins
    assert _state(cli_uow, org_id)["in_groups"] == []
    with cli_uow:  # one of them is deleted before he accepts: he joins the other
        piano = cli_uow.session.scalars(
            select(Group.id).where(Group.org_id == org_id, Group.name == "Piano")
        ).one()
    groups.delete_group(cli_uow, org_id, piano)

    # Bob signs up and accepts the invitation the import mailed him.
    with cli_uow:
        link = cli_uow.session.scalars(
            select(MailMessage.secret_link).where(MailMessage.to_address == bob)
        ).one()
    assert link is not None
    assert link.startswith(f"{PUBLIC_URL}/invitations/")
    person = users.create_user(cli_uow, email=bob, name="Bob", password="long enough")
    invitations.accept_invitation(cli_uow, link.rsplit("/", 1)[1], user_id=person.id)

    assert _state(cli_uow, org_id)["in_groups"] == [(bob, "Theory")]
    assert _member(cli_uow, org_id, bob) == ("member", "unlicensed", "active")
    again = run("members", "import", org_id, str(roster))
    assert again.code == 0
    assert f"line 2  {bob}  skipped: already a member; in Piano" in again.err
    assert _state(cli_uow, org_id)["in_groups"] == [(bob, "Piano"), (bob, "Theory")]


def test_a_person_removed_from_the_org_is_not_brought_back_by_a_file(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, _ = _org(cli_uow)
    ada = users.create_user(cli_uow, email=unique_email("ada"), name="Ada")
    member = members.add_member(cli_uow, org_id, user_id=ada.id, actor="test")
    members.remove_member(cli_uow, org_id, member.id, actor="test")
    roster = _write(tmp_path / "class.csv", "email", ada.email)

    ran = run("members", "import", org_id, str(roster))

    assert ran.code == 0
    assert "skipped: removed from the org" in ran.err
    assert _member(cli_uow, org_id, ada.email) == ("member", "licensed", "removed")


def test_a_manager_importing_neither_enrols_nor_invites_managers(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    org_id, _ = _org(cli_uow)
    manager = users.create_user(cli_uow, email=unique_email("mia"), name="Mia")
    members.add_member(cli_uow, org_id, user_id=manager.id, role=Role.MANAGER, actor="test")
    ada = users.create_user(cli_uow, email=unique_email("ada"), name="Ada")
    student = unique_email("sam")
    roster = _write(
        tmp_path / "class.csv",
        "email,role",
        f"{ada.email},manager",
        f"{unique_email('max')},manager",
        f"{student},member",
    )

    ran = run("members", "import", org_id, str(roster), "--by", manager.email)

    assert ran.code == 1
    assert ran.out == "3 rows: 0 enrolled, 1 invited, 0 skipped, 2 bad (lines 2, 3)\n"
    assert "line 2  error (forbidden): " in ran.err
    assert _member(cli_uow, org_id, ada.email) is None
    # Sent in the manager's name.
    assert _invitation(cli_uow, org_id, student) == (
        "member",
        "licensed",
        "pending",
        f"user:{manager.id}",
    )

    stranger = users.create_user(cli_uow, email=unique_email("eve"), name="Eve")
    refused = run("members", "import", org_id, str(roster), "--by", stranger.email)
    assert refused.code == 1
    assert "error (forbidden)" in refused.err


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["name,role", "Ada,member"], "names no email column"),
        (["email,grups", "a@school.test,Piano"], "unknown column 'grups'"),
        ([], "the file is empty"),
    ],
)
def test_a_file_that_cannot_be_imported_changes_nothing_and_exits_2(
    cli_uow: UnitOfWork, tmp_path: Path, lines: list[str], reason: str
) -> None:
    org_id, _ = _org(cli_uow)
    before = _state(cli_uow, org_id)
    roster = tmp_path / "class.csv"
    roster.write_text("\n".join(lines), encoding="utf-8")

    ran = run("members", "import", org_id, str(roster))

    assert ran.code == 2, ran
    assert reason in ran.err
    assert "nothing was imported" in ran.err
    assert _state(cli_uow, org_id) == before


def test_a_file_over_the_bounds_is_refused_before_any_row_applies(
    cli_uow: UnitOfWork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    org_id, _ = _org(cli_uow)
    before = _state(cli_uow, org_id)
    rows = [f"{unique_email('p')}" for _ in range(4)]
    roster = _write(tmp_path / "class.csv", "email", *rows)
    monkeypatch.setattr(member_import, "MAX_IMPORT_ROWS", 3)

    ran = run("members", "import", org_id, str(roster))

    assert ran.code == 2
    assert "the file has more than 3 rows: split it" in ran.err
    monkeypatch.setattr(member_import, "MAX_IMPORT_ROWS", 4)
    monkeypatch.setattr(member_import, "MAX_IMPORT_BYTES", roster.stat().st_size - 1)
    ran = run("members", "import", org_id, str(roster))
    assert ran.code == 2
    assert "split it into smaller files" in ran.err
    assert _state(cli_uow, org_id) == before


def test_an_unknown_org_or_file_is_an_error_with_its_exit_code(
    cli_uow: UnitOfWork, tmp_path: Path
) -> None:
    roster = _write(tmp_path / "class.csv", "email", unique_email("a"))
    unknown_org = run("members", "import", "org_nothing", str(roster))
    assert unknown_org.code == 1
    assert "error (not_found): no org org_nothing" in unknown_org.err
    org_id, _ = _org(cli_uow)
    missing = run("members", "import", org_id, str(tmp_path / "missing.csv"))
    assert missing.code == 2
    assert "does not exist" in missing.err
