"""lots: credits that expire, spent in a stated order, traced to what paid for each use

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_KINDS_BEFORE = "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered', 'children', 'parent')"
_KINDS_AFTER = (
    "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered', 'children', 'parent', 'expired')"
)

# Every org that ever moved a credit gets one opening lot that never expires, holding all it
# holds; its id is its org's with the lot prefix, so a child's opening lot can name its
# parent's. A child's opening lot comes from its parent's when it ever received from it. Its
# figures are those the transfers' traces give it, as later transfers keep them: its amount is
# all that entered the org (bought, and received from the parent); moved, what its children
# still have and what it gave back to its parent.
_OPENING_LOTS = """
INSERT INTO lots (org_id, id, source, parent_lot_id, amount, priority, expires_at, created_at,
                  metered, moved, expired, expired_at, warned_at)
SELECT o.id, 'lot_' || substr(o.id, 5),
       CASE WHEN received.org_id IS NULL THEN 'purchase' ELSE 'parent' END,
       CASE WHEN received.org_id IS NULL THEN NULL ELSE 'lot_' || substr(o.parent_id, 5) END,
       COALESCE(received.amount, 0) - bought.balance, 50, NULL, o.created_at,
       burnt.balance, COALESCE(to_children.balance, 0) + COALESCE(returned.amount, 0), 0,
       NULL, NULL
FROM orgs o
JOIN accounts bought ON bought.org_id = o.id AND bought.id = 'purchases'
JOIN accounts burnt ON burnt.org_id = o.id AND burnt.id = 'metered'
LEFT JOIN accounts to_children ON to_children.org_id = o.id AND to_children.id = 'children'
LEFT JOIN (SELECT org_id, sum(amount) AS amount FROM transfers WHERE kind = 'from_parent'
           GROUP BY org_id) received ON received.org_id = o.id
LEFT JOIN (SELECT org_id, sum(amount) AS amount FROM transfers WHERE kind = 'to_parent'
           GROUP BY org_id) returned ON returned.org_id = o.id
WHERE EXISTS (SELECT 1 FROM transfers t WHERE t.org_id = o.id)
"""

_OPENING_HOLDINGS = """
INSERT INTO lot_balances (org_id, account_id, lot_id, amount, held)
SELECT a.org_id, a.id, l.id, a.balance, a.held
FROM accounts a JOIN lots l ON l.org_id = a.org_id
WHERE a.kind IN ('pool', 'wallet') AND a.balance > 0
"""

_TRACE = {
    "postgresql": "json_build_array(json_build_object('lot_id', 'lot_' || substr(org_id, 5),"
    " 'amount', {amount}))",
    "sqlite": "json_array(json_object('lot_id', 'lot_' || substr(org_id, 5), 'amount', {amount}))",
}


def upgrade() -> None:
    op.create_table(
        "lots",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("parent_lot_id", sa.String(length=40), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metered", sa.BigInteger(), nullable=False),
        sa.Column("moved", sa.BigInteger(), nullable=False),
        sa.Column("expired", sa.BigInteger(), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(source = 'parent') = (parent_lot_id IS NOT NULL)", name=op.f("ck_lots_parent_lot")
        ),
        sa.CheckConstraint("priority BETWEEN 0 AND 100", name=op.f("ck_lots_priority")),
        sa.CheckConstraint("source IN ('purchase', 'parent')", name=op.f("ck_lots_source")),
        sa.CheckConstraint(
            "amount >= 0 AND metered >= 0 AND expired >= 0 AND metered + moved + expired <= amount",
            name=op.f("ck_lots_counters"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_lots_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_lots")),
        sa.UniqueConstraint("org_id", "parent_lot_id", name=op.f("uq_lots_org_id_parent_lot_id")),
    )
    op.create_index("ix_lots_org_id_expires_at", "lots", ["org_id", "expires_at"])
    op.create_table(
        "lot_balances",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.String(length=48), nullable=False),
        sa.Column("lot_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount >= 0 AND held >= 0 AND held <= amount", name=op.f("ck_lot_balances_covered")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "account_id"],
            ["accounts.org_id", "accounts.id"],
            name=op.f("fk_lot_balances_org_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "lot_id"],
            ["lots.org_id", "lots.id"],
            name=op.f("fk_lot_balances_org_id_lots"),
        ),
        sa.PrimaryKeyConstraint("org_id", "account_id", "lot_id", name=op.f("pk_lot_balances")),
    )
    op.create_index("ix_lot_balances_org_id_lot_id", "lot_balances", ["org_id", "lot_id"])

    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sole_lot_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("next_expiry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(op.f("ix_orgs_next_expiry_at"), ["next_expiry_at"])
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lots", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lots", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_accounts_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_accounts_kind"), _KINDS_AFTER)

    op.execute(
        "INSERT INTO accounts (org_id, id, kind, member_id, balance, held)"
        " SELECT id, 'expired', 'expired', NULL, 0, 0 FROM orgs"
    )
    op.execute(_OPENING_LOTS)
    op.execute(_OPENING_HOLDINGS)
    op.execute(
        "UPDATE orgs SET sole_lot_id = 'lot_' || substr(id, 5)"
        " WHERE EXISTS (SELECT 1 FROM lots WHERE lots.org_id = orgs.id)"
    )
    trace = _TRACE[op.get_bind().dialect.name]
    # The trace is one of the two constant expressions above: nothing here comes from input.
    op.execute(f"UPDATE transfers SET lots = {trace.format(amount='amount')}")  # noqa: S608
    op.execute(
        f"UPDATE holds SET lots = {trace.format(amount='amount')}"  # noqa: S608
        " WHERE status = 'pending'"
    )


def downgrade() -> None:
    # Before lots nothing could expire: a ledger that posted expiries cannot go back.
    posted = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM transfers WHERE kind = 'expiry'"))
        .scalar_one()
    )
    if posted:
        raise RuntimeError(f"{posted} expiry transfers were posted: 0010 cannot be undone")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("lots")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_column("lots")
    op.execute("DELETE FROM accounts WHERE kind = 'expired'")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_accounts_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_accounts_kind"), _KINDS_BEFORE)
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_orgs_next_expiry_at"))
        batch_op.drop_column("next_expiry_at")
        batch_op.drop_column("sole_lot_id")
    op.drop_index("ix_lot_balances_org_id_lot_id", table_name="lot_balances")
    op.drop_table("lot_balances")
    op.drop_index("ix_lots_org_id_expires_at", table_name="lots")
    op.drop_table("lots")
