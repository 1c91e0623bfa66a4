"""Resetting a class in one step, and previewing what a reset would do.

A reset removes every active member whose role is member, returns their credits to the pool
when the org is returnable (otherwise the credits stay on the removed members), revokes pending
invitations and rotates the invite code: all in one transaction, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update

from creditpool.domain.errors import PreviewOutdated
from creditpool.domain.model import InvitationStatus, MemberStatus, Role
from creditpool.services import ledger
from creditpool.services.lookups import load_org
from creditpool.services.members import remove_members
from creditpool.services.transactions import run_write
from creditpool.storage.ids import new_secret
from creditpool.storage.schema import Account, Invitation, Member, Org
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ResetResult:
    """What a reset did, or would do."""

    removed: int
    revoked: int  # micro-credits back in the pool
    invitations_revoked: int
    invite_code: str  # after a reset, the new code; in a preview, the code that would stop


def _students(uow: UnitOfWork, org_id: str) -> list[Member]:
    return list(
        uow.session.scalars(
            select(Member)
            .where(
                Member.org_id == org_id,
                Member.status == MemberStatus.ACTIVE,
                Member.role == Role.MEMBER,
            )
            .order_by(Member.id)
        )
    )


def _pending_invitations(org_id: str, now: object) -> list[object]:
    return [
        Invitation.org_id == org_id,
        Invitation.status == InvitationStatus.PENDING,
        Invitation.expires_at > now,
    ]


def _preview(uow: UnitOfWork, org: Org) -> ResetResult:
    students = _students(uow, org.id)
    revoked = 0
    if org.returnable and students:
        ids = [ledger.wallet_account(member.id) for member in students]
        for part in ledger.chunks(ids):
            revoked += int(
                uow.session.scalar(
                    select(func.coalesce(func.sum(Account.balance), 0)).where(
                        Account.org_id == org.id, Account.id.in_(part)
                    )
                )
                or 0
            )
    invitations = uow.session.scalar(
        select(func.count())
        .select_from(Invitation)
        .where(
            *_pending_invitations(org.id, uow.now)  # type: ignore[arg-type]
        )
    )
    return ResetResult(len(students), revoked, int(invitations or 0), org.invite_code)


def _differs(now: ResetResult, shown: ResetResult) -> bool:
    """Whether a reset now would do other than the preview showed. An invitation that expired
    since is no difference: there is one less to revoke, and nothing else changes."""
    return (now.removed, now.revoked, now.invite_code) != (
        shown.removed,
        shown.revoked,
        shown.invite_code,
    ) or now.invitations_revoked > shown.invitations_revoked


def preview_reset(uow: UnitOfWork, org_id: str) -> ResetResult:
    """Return what a reset now would do, changing nothing."""
    with uow:
        return _preview(uow, load_org(uow, org_id))


def reset_org(
    uow: UnitOfWork,
    org_id: str,
    *,
    actor: str,
    expected: ResetResult | None = None,
    idempotency_key: str | None = None,
) -> ResetResult:
    """Remove every student, return their credits, revoke invitations, rotate the code.

    With `expected` (a preview the person confirmed), refuse with PreviewOutdated, changing
    nothing, when the reset would now do anything else: someone joined, spent or was invited
    in between.
    """

    def apply() -> ResetResult:
        org = load_org(uow, org_id, lock=True)
        if expected is not None and _differs(_preview(uow, org), expected):
            raise PreviewOutdated("the class changed since the preview: look at it again")
        students = _students(uow, org_id)
        posting = ledger.Posting(uow.session, org.id, actor, uow.now)
        revoked = remove_members(uow, org, students, posting, reference="reset")
        invitations = uow.session.execute(
            update(Invitation)
            .where(*_pending_invitations(org_id, uow.now))  # type: ignore[arg-type]
            .values(status=InvitationStatus.REVOKED)
        )
        org.invite_code = new_secret()
        uow.session.flush()
        return ResetResult(
            len(students),
            revoked,
            ledger.rowcount(invitations),
            org.invite_code,
        )

    return run_write(
        uow,
        apply,
        org_id=org_id,
        actor=actor,
        key=idempotency_key,
        operation="reset_org",
        arguments={},
        result_type=ResetResult,
    )
