"""Rights that flow down a family of orgs: the owner and managers of an ancestor act in its
descendants as a manager does, never up.

This module only finds the role a user carries into an org from its ancestors: domain/roles.py's
`role_in_descendants` is the rule that says which, and services/auth.py applies the roles table
to it (with the caller's own standing) in one place. A family is at most three deep (orgs' CHECK
on depth), so an org's ancestors are its parent and grandparent, read by one query.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from creditpool.domain.model import MemberStatus, Role
from creditpool.domain.roles import role_in_descendants
from creditpool.storage.schema import Member, Org, table_of
from creditpool.storage.unit_of_work import UnitOfWork

# Built once (each request only binds its values): the user's live memberships in an org's
# parent and grandparent.
_orgs, _members = table_of(Org), table_of(Member)
_parent_orgs = _orgs.alias("parent_org")
_IN_ANCESTORS = select(_members.c.role).where(
    _members.c.user_id == bindparam("user"),
    _members.c.status == MemberStatus.ACTIVE,
    _members.c.org_id.in_(
        [
            bindparam("parent"),
            select(_parent_orgs.c.parent_id)
            .where(_parent_orgs.c.id == bindparam("parent"))
            .scalar_subquery(),
        ]
    ),
)


def role_from_ancestors(uow: UnitOfWork, user_id: str, parent_id: str | None) -> Role | None:
    """Return the role the user acts with in a child of `parent_id` by its standing in the
    child's ancestors, None if it has none there (or the org is at the top: `parent_id` None,
    and then no query). Runs in an open transaction."""
    if parent_id is None:
        return None
    rows = uow.session.connection().execute(_IN_ANCESTORS, {"user": user_id, "parent": parent_id})
    return role_in_descendants(Role(row.role) for row in rows)


def role_from_ancestors_of(uow: UnitOfWork, user_id: str, org_id: str) -> Role | None:
    """Return the role the user carries into the org from its ancestors, reading the org's
    parent first; None at the top or with no standing there. Runs in an open transaction."""
    parent_id = uow.session.scalar(select(Org.parent_id).where(Org.id == org_id))
    return role_from_ancestors(uow, user_id, parent_id)
