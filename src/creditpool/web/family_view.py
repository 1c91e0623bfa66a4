"""What the class manager shows of an org's family: its children's figures (a parent's page),
where its credits come from (a child's page), and the form that adds a child."""

from __future__ import annotations

from dataclasses import dataclass, field

from creditpool.domain.errors import Forbidden, NotFound
from creditpool.domain.model import MAX_DEPTH
from creditpool.domain.roles import Permission
from creditpool.services import access, auth, families
from creditpool.services.auth import Grant, Principal
from creditpool.services.views import OrgView
from creditpool.storage.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class ChildForm:
    """The "add a child org" form as typed; `unconfirmed` asks for the second click that makes
    someone whose e-mail address is not confirmed its owner."""

    name: str = ""
    owner_email: str = ""
    unconfirmed: bool = False


@dataclass(frozen=True)
class ChildrenTotals:
    """The children's figures added up, for the table's last row."""

    members: int
    available: int
    allocated: int
    used: int
    burn_rate_per_day: int


@dataclass(frozen=True)
class FamilyPanel:
    """An org's place in its family as its class manager shows it."""

    children: list[OrgView]  # by name
    totals: ChildrenTotals | None  # None without children
    may_add_child: bool
    ancestors: list[tuple[str, str]]  # (id, name), from the parent up
    parent_link: bool  # whether the viewer may open the parent's page
    received: int  # from the parent, in all
    given_back: int  # to the parent, in all
    child_form: ChildForm = field(default_factory=ChildForm)

    @property
    def parent(self) -> tuple[str, str] | None:
        """The parent's (id, name), or None at the top."""
        return self.ancestors[0] if self.ancestors else None

    @property
    def shows_children(self) -> bool:
        """Whether the page has the children section (a table, or the form to add one)."""
        return bool(self.children) or self.may_add_child

    @property
    def parts_shown(self) -> set[str]:
        """The page's parts a refusal can be shown beside: the section, each child's row."""
        if not self.shows_children:
            return set()
        return {"children"} | {f"child-{child.id}" for child in self.children}

    @property
    def family_line(self) -> list[str]:
        """The names from the top of the family down to the parent."""
        return [name for _, name in reversed(self.ancestors)]


def family_panel(
    uow: UnitOfWork,
    org_id: str,
    grant: Grant,
    principal: Principal,
    *,
    child_form: ChildForm | None = None,
) -> FamilyPanel:
    """Read the org's children (one query for all their figures) and its ancestors."""
    children = sorted(
        families.list_children(uow, org_id), key=lambda child: (child.name.casefold(), child.id)
    )
    ancestors = families.ancestors_of(uow, org_id)
    received, given_back = families.family_received(uow, org_id) if ancestors else (0, 0)
    return FamilyPanel(
        children=children,
        totals=_totals(children),
        # Opening an org below is its owner's (or an operator's); a class has no children.
        may_add_child=access.may_govern(grant) and len(ancestors) + 1 < MAX_DEPTH,
        ancestors=ancestors,
        parent_link=bool(ancestors) and _may_open(uow, principal, ancestors[0][0]),
        received=received,
        given_back=given_back,
        child_form=child_form or ChildForm(),
    )


def _totals(children: list[OrgView]) -> ChildrenTotals | None:
    if not children:
        return None
    return ChildrenTotals(
        members=sum(child.rollup.members for child in children),
        available=sum(child.balance.available for child in children),
        allocated=sum(child.balance.allocated for child in children),
        used=sum(child.balance.used for child in children),
        burn_rate_per_day=sum(child.balance.burn_rate_per_day for child in children),
    )


def _may_open(uow: UnitOfWork, principal: Principal, org_id: str) -> bool:
    """Whether the viewer may open that org's class manager (a child's manager may not open
    its parent's: rights flow down, never up)."""
    try:
        auth.authorize(uow, principal, org_id, Permission.MANAGE)
    except (NotFound, Forbidden):
        return False
    return True
