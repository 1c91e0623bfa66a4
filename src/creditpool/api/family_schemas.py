"""Request and response bodies of the family calls: credits between a parent's pool and a
child's (a child is opened with the body of a new org, NewOrg)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from creditpool.api.schemas import Amount, AmountIn, Balance, RequestBody
from creditpool.domain.amounts import format_credits
from creditpool.services.families import FamilyTransferView


class ChildAllocation(RequestBody):
    """Credits from the org's pool to its child's."""

    amount: AmountIn


class ChildRevocation(RequestBody):
    """Credits back from the child's pool to the org's; all the child has available without
    an amount."""

    amount: AmountIn | None = None


class FamilyTransfer(BaseModel):
    """A move between a parent's pool and its child's, recorded in both ledgers under one batch
    id, with both balances after it."""

    batch_id: str
    amount: Amount
    parent: Balance = Field(description="The parent's balance after the move.")
    child: Balance = Field(description="The child's balance after the move.")

    @classmethod
    def of(cls, view: FamilyTransferView) -> FamilyTransfer:
        """Return the body for a move between two pools."""
        return cls(
            batch_id=view.batch_id,
            amount=format_credits(view.amount),
            parent=Balance.of(view.parent),
            child=Balance.of(view.child),
        )
