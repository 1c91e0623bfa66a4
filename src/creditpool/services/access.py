"""What a caller may see and do beyond one permission check: which orgs it may list, and which
parts of the class manager it may use. The interfaces ask here instead of reading roles
themselves (domain/roles.py holds the table; services.auth authorizes each action).
"""

from __future__ import annotations

from creditpool.domain.model import Role
from creditpool.domain.roles import Permission, may_grant, role_allows
from creditpool.services import orgs
from creditpool.services.auth import Grant, Principal, grants, org_seen_by
from creditpool.services.views import OrgView
from creditpool.storage.unit_of_work import UnitOfWork


def orgs_listed_for(
    uow: UnitOfWork, principal: Principal, *, after: str | None = None, limit: int = 50
) -> list[OrgView]:
    """Return the orgs a caller may list, by id, each as it may read it: every org for an
    operator, the orgs a user owns or manages, an org API key's own org."""
    if principal.operator:
        found = orgs.list_orgs(uow, after=after, limit=limit)
    else:
        found = orgs.list_orgs(
            uow,
            user_id=principal.user_id,
            managed_only=True,
            org_id=principal.org_id,
            after=after,
            limit=limit,
        )
    return [org_seen_by(org, principal) for org in found]


def may_govern(grant: Grant) -> bool:
    """Whether the caller may govern the org (settings, pause, API keys, reset, roles)."""
    return grants(grant, Permission.GOVERN)


def may_manage(role: Role) -> bool:
    """Whether a member with this role runs the org (the class manager is theirs to open)."""
    return role_allows(role, Permission.MANAGE)


def roles_handled_by(grant: Grant) -> frozenset[Role]:
    """The roles the caller may give or take (invite as, remove, bring back, change to):
    managers handle members; the owner and operators handle managers too."""
    if grant.scopes is not None:
        return frozenset()  # an org API key handles nobody
    return frozenset(role for role in (Role.MEMBER, Role.MANAGER) if may_grant(grant.role, role))


def permission_to_change_member(*, changes_role: bool) -> Permission:
    """What changing a member needs: its role, GOVERN (only the owner makes managers); only
    its seat, MANAGE."""
    return Permission.GOVERN if changes_role else Permission.MANAGE
