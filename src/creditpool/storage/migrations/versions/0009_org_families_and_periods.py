"""pools inside pools (an org's parent, family root and depth) and budgets per period

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_KINDS_BEFORE = "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered')"
_KINDS_AFTER = "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered', 'children', 'parent')"


def upgrade() -> None:
    # Columns added to rows that exist get a default while they are added, then none: the
    # application always says what it writes. Every org that exists is at the top of its own
    # family.
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("root_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("depth", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(
            sa.Column("ancestor_paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )
        batch_op.add_column(sa.Column("auto_period", sa.String(length=8), nullable=True))
        batch_op.add_column(
            sa.Column("auto_reclaim", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("period_started_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("period_ends_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE orgs SET root_id = id")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        batch_op.alter_column("root_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("depth", server_default=None)
        batch_op.alter_column("ancestor_paused", server_default=None)
        batch_op.alter_column("timezone", server_default=None)
        batch_op.alter_column("auto_reclaim", server_default=None)
        batch_op.create_foreign_key(op.f("fk_orgs_parent_id_orgs"), "orgs", ["parent_id"], ["id"])
        batch_op.create_index(op.f("ix_orgs_parent_id"), ["parent_id"])
        batch_op.create_index(op.f("ix_orgs_root_id"), ["root_id"])
        batch_op.create_index(op.f("ix_orgs_period_ends_at"), ["period_ends_at"])
        batch_op.create_check_constraint(op.f("ck_orgs_depth"), "depth BETWEEN 1 AND 3")
        batch_op.create_check_constraint(
            op.f("ck_orgs_parent_at_depth"), "(parent_id IS NULL) = (depth = 1)"
        )
        batch_op.create_check_constraint(
            op.f("ck_orgs_period"), "auto_period IS NULL OR auto_period IN ('week', 'month')"
        )
        batch_op.create_check_constraint(
            op.f("ck_orgs_period_has_boundary"),
            "(auto_period IS NULL) = (period_ends_at IS NULL)",
        )

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_period_allocated", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("period_used_base", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_check_constraint(
            op.f("ck_members_period_not_negative"),
            "auto_period_allocated >= 0 AND period_used_base >= 0",
        )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.alter_column("auto_period_allocated", server_default=None)
        batch_op.alter_column("period_used_base", server_default=None)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_accounts_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_accounts_kind"), _KINDS_AFTER)


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_accounts_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_accounts_kind"), _KINDS_BEFORE)
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_members_period_not_negative"), type_="check")
        batch_op.drop_column("period_used_base")
        batch_op.drop_column("auto_period_allocated")
    with op.batch_alter_table("orgs", schema=None) as batch_op:
        for name in ("period_has_boundary", "period", "parent_at_depth", "depth"):
            batch_op.drop_constraint(op.f(f"ck_orgs_{name}"), type_="check")
        batch_op.drop_index(op.f("ix_orgs_period_ends_at"))
        batch_op.drop_index(op.f("ix_orgs_root_id"))
        batch_op.drop_index(op.f("ix_orgs_parent_id"))
        batch_op.drop_constraint(op.f("fk_orgs_parent_id_orgs"), type_="foreignkey")
        for column in (
            "period_ends_at",
            "period_started_at",
            "auto_reclaim",
            "auto_period",
            "timezone",
            "ancestor_paused",
            "depth",
            "root_id",
            "parent_id",
        ):
            batch_op.drop_column(column)
