"""Who may do what: the roles table, in one place.

A caller is an operator (a user marked as one, or an operator key), a member of the org with a
role, an org API key with scopes, or a stranger. A stranger to an org sees 404, never 403, so
that ids of other orgs reveal nothing; a member whose role falls short sees 403.

| action (permission)                                  | operator | owner | manager | member | key |
| ---------------------------------------------------- | -------- | ----- | ------- | ------ | --- |
| create org, list all orgs, purchase (OPERATE)        | yes      |       |         |        |     |
| settings, pause, API keys, reset, roles,             | yes      | yes   |         |        |     |
|   open a child org (GOVERN)                          |          |       |         |        |     |
| invite, see invitations, invite link and code,       | yes      | yes   | yes     |        |     |
|   rotate, groups, allot, revoke, seats, list the     |          |       |         |        |     |
|   children, allot to and take back from a child      |          |       |         |        |     |
|   (MANAGE)                                           |          |       |         |        |     |
| see org (no invite code), balance, members, groups,  | yes      | yes   | yes     |        | yes |
|   ledger (READ)                                      |          |       |         |        |     |
| see own wallet and usage (READ_OWN)                  | yes      | yes   | yes     | yes    | yes |
| charge usage, holds, check access (CHARGE)           | yes      |       |         |        | yes |

"key" is an org API key with the `usage` scope: it reads only what charging needs, so never the
invite code, the invitations or the org's keys.

Rights flow down a family of orgs and never up (`role_in_descendants`): the owner and managers
of an org act in each of its descendants (children, grandchildren) as the descendant's own
managers do, by the manager's column above; never as its owner, so GOVERN stays with the
descendant's own owner and the operators. An ancestor's members gain nothing below, and
nobody in a child gains anything in its parent: there a child's people are strangers (404).

| role in an org | acts in each descendant as |
| -------------- | -------------------------- |
| owner          | manager                    |
| manager        | manager                    |
| member         | (a stranger)               |

Who may make whom what (`may_grant`): a role is granted by inviting, bringing a member back or
changing a role, and taken by removal or a role change. Managers handle members only; the
owner and operators handle managers too. Nobody is made owner except by the owner handing the
org over (or an operator doing it).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from creditpool.domain.model import Role


class Permission(StrEnum):
    """A row of the roles table."""

    OPERATE = "operate"
    GOVERN = "govern"
    MANAGE = "manage"
    READ = "read"
    READ_OWN = "read_own"
    CHARGE = "charge"


USAGE_SCOPE = "usage"

_BY_ROLE: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(
        {Permission.GOVERN, Permission.MANAGE, Permission.READ, Permission.READ_OWN}
    ),
    Role.MANAGER: frozenset({Permission.MANAGE, Permission.READ, Permission.READ_OWN}),
    Role.MEMBER: frozenset({Permission.READ_OWN}),
}
_BY_SCOPE: dict[str, frozenset[Permission]] = {
    USAGE_SCOPE: frozenset({Permission.CHARGE, Permission.READ, Permission.READ_OWN}),
}


def role_allows(role: Role, permission: Permission) -> bool:
    """Return whether a member with this role may act under `permission`."""
    return permission in _BY_ROLE[role]


def scopes_allow(scopes: frozenset[str], permission: Permission) -> bool:
    """Return whether an org API key with these scopes may act under `permission`."""
    return any(permission in _BY_SCOPE.get(scope, frozenset()) for scope in scopes)


KNOWN_SCOPES = frozenset(_BY_SCOPE)


_REACHING_DOWN = frozenset({Role.OWNER, Role.MANAGER})


def role_in_descendants(roles_in_ancestors: Iterable[Role]) -> Role | None:
    """Return the role a user acts with in an org by its roles in the org's ancestors (None:
    they give it no standing there)."""
    return Role.MANAGER if any(role in _REACHING_DOWN for role in roles_in_ancestors) else None


def may_grant(granter: Role | None, role: Role) -> bool:
    """Return whether a caller acting as `granter` (None: an operator) may give or take `role`."""
    if granter is None or granter is Role.OWNER:
        return True
    return granter is Role.MANAGER and role is Role.MEMBER
