"""the pool's kept series (a row a day, and how far it is rolled up); covering indexes for the
metrics an org uses and for members' groups

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pool_days",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("burn_began", sa.DateTime(timezone=True), nullable=True),
        sa.Column("burn_ended", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_pool_days_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "day", name=op.f("pk_pool_days")),
    )
    op.create_table(
        "pool_rollups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("through_id", sa.String(length=40), nullable=False),
        sa.Column("through_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_pool_rollups_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_pool_rollups")),
    )
    op.create_index(
        op.f("ix_usage_totals_org_id_metric"),
        "usage_totals",
        ["org_id", "metric"],
        unique=False,
    )
    op.create_index(
        op.f("ix_group_members_org_id_member_id_group_id"),
        "group_members",
        ["org_id", "member_id", "group_id"],
        unique=False,
    )
    op.drop_index("ix_group_members_org_id_member_id", table_name="group_members")


def downgrade() -> None:
    op.create_index(
        "ix_group_members_org_id_member_id",
        "group_members",
        ["org_id", "member_id"],
        unique=False,
    )
    op.drop_index(op.f("ix_group_members_org_id_member_id_group_id"), table_name="group_members")
    op.drop_index(op.f("ix_usage_totals_org_id_metric"), table_name="usage_totals")
    op.drop_table("pool_rollups")
    op.drop_table("pool_days")
