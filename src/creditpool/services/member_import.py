"""Importing a class from a CSV file: each row enrols a person who has an account, or invites
one who has not; a bad row is reported with its line number and the rest carry on.

The file has a header naming its columns, in any order and case: `email` (required), `name`,
`role` (member or manager; member when empty), `seat` (licensed, unlicensed or external;
licensed when empty) and `groups` (group names separated by `;`, each created when missing).

What a row does, each row in a transaction of its own:

- an address with an account and no membership: enrolled at once, with its role, seat and
  groups; a pending invitation of its in the org is revoked (it would only answer "already a
  member");
- an address without an account: invited by e-mail with its role, seat and groups (created
  now when missing); accepting the invitation puts the new member in them;
- already a member: skipped, its role and seat left as they are, but given any group of the
  row it lacks; removed from the org, or its invitation revoked: skipped (bringing a person
  back, or inviting one an admin turned away, is a person's decision, not a file's);
- a pending invitation: skipped; an expired one: invited again.

So importing the same file twice creates nothing the second time. Two imports of one file run
at the same moment may both invite a person: run them one after another.

The import acts as a person (the org's owner unless told otherwise) and grants no more than
that person may: a manager's import neither enrols nor invites managers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO, TypeVar

from sqlalchemy import select, update

from creditpool.domain.errors import (
    CreditpoolError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from creditpool.domain.model import InvitationStatus, MemberStatus, Role, Seat
from creditpool.domain.text import clean_name
from creditpool.services import invitations
from creditpool.services.auth import check_may_grant, standing_of
from creditpool.services.lookups import load_org
from creditpool.services.members import join
from creditpool.services.transactions import run_write
from creditpool.services.users import normalise_email
from creditpool.storage.ids import new_id
from creditpool.storage.schema import Group, GroupMember, Invitation, Member, Org, User
from creditpool.storage.unit_of_work import UnitOfWork

MAX_IMPORT_BYTES = 4 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000
GROUP_SEPARATOR = ";"
COLUMNS = ("email", "name", "role", "seat", "groups")
_ALIASES = {"e-mail": "email", "group": "groups"}

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class RosterRow:
    """One good row of the file: who, with what role, seat and groups, and where it was."""

    line: int
    email: str
    name: str
    role: Role
    seat: Seat
    groups: tuple[str, ...]

    @property
    def person(self) -> str:
        """The row's person as a report names it: `Name <address>`, or the address alone."""
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class RowProblem:
    """A row that cannot be imported: its line, the error's code and why."""

    line: int
    code: str
    reason: str


@dataclass(frozen=True)
class Roster:
    """A file read: its good rows and its bad ones, in the order of the file."""

    rows: list[RosterRow]
    problems: list[RowProblem]

    @property
    def size(self) -> int:
        """How many rows the file holds, good and bad."""
        return len(self.rows) + len(self.problems)


class Outcome(StrEnum):
    """What importing a row did."""

    ENROLLED = "enrolled"
    INVITED = "invited"
    SKIPPED = "skipped"
    REFUSED = "refused"


@dataclass(frozen=True)
class RowResult:
    """What one row did, why (for a skip or a refusal), and the groups it gave the member."""

    row: RosterRow
    outcome: Outcome
    detail: str = ""
    groups_added: tuple[str, ...] = ()
    code: str | None = None


def read_roster(source: BinaryIO) -> Roster:
    """Read a CSV roster: each good row, and each bad one with its line and reason.

    The file as a whole is refused (PayloadTooLarge) past MAX_IMPORT_BYTES or MAX_IMPORT_ROWS
    rows, and (InvalidInput) when it is not UTF-8 or its header lacks `email` or names a
    column that is not one of COLUMNS.
    """
    data = source.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            f"the file is over {MAX_IMPORT_BYTES // (1024 * 1024)} MiB: split it into smaller "
            "files (importing one again skips what it already did)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the file is not UTF-8 text (byte {error.start})") from error
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _header(next(reader, None))
    rows: list[RosterRow] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    line = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            if len(rows) + len(problems) == MAX_IMPORT_ROWS:
                raise PayloadTooLarge(
                    f"the file has more than {MAX_IMPORT_ROWS:,} rows: split it into smaller "
                    "files (importing one again skips what it already did)"
                )
            try:
                row = _row(line, columns, cells)
                if row.email in first_line:
                    raise InvalidInput(f"{row.email} is on line {first_line[row.email]} already")
                first_line[row.email] = line
                rows.append(row)
            except CreditpoolError as error:
                problems.append(RowProblem(line, error.code, error.detail))
        line = reader.line_num + 1  # a quoted cell may span lines: the next row starts here
    return Roster(rows, problems)


def _header(cells: list[str] | None) -> list[str]:
    if cells is None:
        raise InvalidInput("the file is empty: its first line names the columns, e.g. email,name")
    names = [_ALIASES.get(cell.strip().lower(), cell.strip().lower()) for cell in cells]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise InvalidInput(
            f"unknown column {unknown[0]!r} in the first line: the columns are "
            + ", ".join(COLUMNS)
        )
    if "email" not in names:
        raise InvalidInput("the first line names no email column")
    if len(set(names)) != len(names):
        raise InvalidInput("the first line names a column twice")
    return names


def _row(line: int, columns: list[str], cells: list[str]) -> RosterRow:
    if len(cells) > len(columns):
        raise InvalidInput(f"{len(cells)} cells where the first line names {len(columns)}")
    given = dict(zip(columns, (cell.strip() for cell in cells), strict=False))
    role = _choice(Role, given.get("role") or Role.MEMBER, what="role")
    if role is Role.OWNER:
        raise InvalidInput("nobody becomes owner by an import; hand the org over instead")
    name = given.get("name", "")
    groups = [part for part in given.get("groups", "").split(GROUP_SEPARATOR) if part.strip()]
    return RosterRow(
        line=line,
        email=normalise_email(given.get("email", "")),
        name=clean_name(name) if name else "",
        role=role,
        seat=_choice(Seat, given.get("seat") or Seat.LICENSED, what="seat"),
        groups=tuple(dict.fromkeys(clean_name(part, what="a group name") for part in groups)),
    )


def _choice(kind: type[E], value: str, *, what: str) -> E:
    try:
        return kind(value.lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind if member is not Role.OWNER)
        raise InvalidInput(f"{value[:40]!r} is not a {what} ({allowed})") from None


@dataclass(frozen=True)
class Importer:
    """Imports rows into one org as one person: `actor` as the ledger names them, and their
    role there (None: an operator)."""

    uow: UnitOfWork
    org_id: str
    actor: str
    caller_role: Role | None
    public_url: str

    def import_row(self, row: RosterRow) -> RowResult:
        """Enrol, invite or skip one row; a refusal is a result, and changes nothing."""
        try:
            check_may_grant(self.caller_role, row.role, doing="import")
            result = run_write(self.uow, lambda: self._enrol_or_plan(row))
            if result is not None:
                return result
            group_ids = run_write(self.uow, lambda: self._create_groups(row)) if row.groups else []
            invitations.invite_by_email(
                self.uow,
                self.org_id,
                [row.email],
                role=row.role,
                seat=row.seat,
                public_url=self.public_url,
                actor=self.actor,
                caller_role=self.caller_role,
                group_ids=group_ids,
            )
            if row.groups:
                return RowResult(row, Outcome.INVITED, "joins its groups on accepting")
            return RowResult(row, Outcome.INVITED)
        except CreditpoolError as error:
            return RowResult(row, Outcome.REFUSED, error.detail, code=error.code)

    def _enrol_or_plan(self, row: RosterRow) -> RowResult | None:
        """Enrol or skip the row, in the transaction run_write opened; None: invite them."""
        uow = self.uow
        org = load_org(uow, self.org_id, lock=True)
        user_id = uow.session.scalar(select(User.id).where(User.email == row.email))
        if user_id is None:
            return self._invitation_standing(row)
        member = uow.session.scalars(
            select(Member).where(Member.org_id == org.id, Member.user_id == user_id)
        ).one_or_none()
        if member is not None and member.status == MemberStatus.REMOVED:
            return RowResult(
                row, Outcome.SKIPPED, "removed from the org (bring them back on its page)"
            )
        if member is None:
            member = join(uow, org, user_id=user_id, role=row.role, seat=row.seat)
            uow.session.execute(
                update(Invitation)
                .where(
                    Invitation.org_id == org.id,
                    Invitation.email == row.email,
                    Invitation.status == InvitationStatus.PENDING,
                )
                .values(status=InvitationStatus.REVOKED)
            )
            added = _give_groups(uow, org, member.id, row.groups)
            return RowResult(row, Outcome.ENROLLED, "", added)
        added = _give_groups(uow, org, member.id, row.groups)
        return RowResult(row, Outcome.SKIPPED, "already a member", added)

    def _invitation_standing(self, row: RosterRow) -> RowResult | None:
        """Skip an address whose latest invitation is pending or was revoked; None: invite."""
        latest = self.uow.session.scalars(
            select(Invitation)
            .where(Invitation.org_id == self.org_id, Invitation.email == row.email)
            .order_by(Invitation.created_at.desc(), Invitation.id.desc())
            .limit(1)
        ).first()
        if latest is None or latest.status == InvitationStatus.ACCEPTED:
            return None
        if latest.status == InvitationStatus.REVOKED:
            return RowResult(row, Outcome.SKIPPED, "their invitation was revoked")
        if latest.status == InvitationStatus.PENDING and latest.expires_at > self.uow.now:
            return RowResult(
                row, Outcome.SKIPPED, f"invited already, until {latest.expires_at:%Y-%m-%d}"
            )
        return None  # expired: invite them again

    def _create_groups(self, row: RosterRow) -> list[str]:
        """The ids of the row's groups, creating those that do not exist yet."""
        org = load_org(self.uow, self.org_id)
        return [_group_named(self.uow, org, name).id for name in row.groups]


def start_import(
    uow: UnitOfWork, org_id: str, *, by_email: str | None, public_url: str
) -> Importer:
    """Return an importer into the org acting as `by_email` (None: the org's owner); NotFound
    for an unknown org or person, Forbidden for one who may not invite people to it."""
    with uow:
        load_org(uow, org_id)
        if by_email is None:
            user_id = uow.session.scalar(
                select(Member.user_id).where(
                    Member.org_id == org_id,
                    Member.role == Role.OWNER,
                    Member.status == MemberStatus.ACTIVE,
                )
            )
        else:
            user_id = uow.session.scalar(
                select(User.id).where(User.email == normalise_email(by_email))
            )
        if user_id is None:
            raise NotFound(f"no user {by_email}" if by_email else f"org {org_id} has no owner")
        actor = f"user:{user_id}"
        standing = standing_of(uow, org_id, actor)
        if standing is None:
            raise Forbidden(f"{by_email or 'its owner'} may not invite people to org {org_id}")
        return Importer(uow, org_id, actor, standing.role, public_url)


def _give_groups(
    uow: UnitOfWork, org: Org, member_id: str, names: tuple[str, ...]
) -> tuple[str, ...]:
    """Put the member in each named group it is not in yet (creating missing groups); return
    the names of the groups it was added to."""
    added = []
    for name in names:
        group = _group_named(uow, org, name)
        known = uow.session.get(GroupMember, (org.id, group.id, member_id))
        if known is None:
            uow.session.add(GroupMember(org_id=org.id, group_id=group.id, member_id=member_id))
            added.append(name)
    uow.session.flush()
    return tuple(added)


def _group_named(uow: UnitOfWork, org: Org, name: str) -> Group:
    group = uow.session.scalars(
        select(Group).where(Group.org_id == org.id, Group.name == name)
    ).first()
    if group is None:
        group = Group(org_id=org.id, id=new_id("grp"), name=name, created_at=uow.now)
        uow.session.add(group)
        uow.session.flush()
    return group
