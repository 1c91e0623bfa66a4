"""buying credits: purchase requests and checkout sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purchase_requests",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint("amount > 0", name=op.f("ck_purchase_requests_amount_positive")),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'declined')",
            name=op.f("ck_purchase_requests_status"),
        ),
        sa.CheckConstraint(
            "(status = 'approved' AND transfer_id IS NOT NULL)"
            " OR (status <> 'approved' AND transfer_id IS NULL)",
            name=op.f("ck_purchase_requests_approved_has_transfer"),
        ),
        sa.CheckConstraint(
            "(status = 'pending' AND decided_at IS NULL)"
            " OR (status <> 'pending' AND decided_at IS NOT NULL)",
            name=op.f("ck_purchase_requests_decided_has_time"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_purchase_requests_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "transfer_id"],
            ["transfers.org_id", "transfers.id"],
            name=op.f("fk_purchase_requests_org_id_transfer_id_transfers"),
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_purchase_requests")),
        sa.UniqueConstraint(
            "org_id", "transfer_id", name=op.f("uq_purchase_requests_org_id_transfer_id")
        ),
    )
    op.create_index(
        "ix_purchase_requests_org_id_status_id",
        "purchase_requests",
        ["org_id", "status", "id"],
        unique=False,
    )
    op.create_index(
        "ix_purchase_requests_status_id", "purchase_requests", ["status", "id"], unique=False
    )
    op.create_table(
        "checkout_sessions",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider_session_id", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transfer_id", sa.String(length=40), nullable=True),
        sa.CheckConstraint(
            "amount > 0 AND unit_price > 0", name=op.f("ck_checkout_sessions_amount_positive")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'completed', 'expired')", name=op.f("ck_checkout_sessions_status")
        ),
        sa.CheckConstraint(
            "(status = 'completed' AND transfer_id IS NOT NULL)"
            " OR (status <> 'completed' AND transfer_id IS NULL)",
            name=op.f("ck_checkout_sessions_completed_has_transfer"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_checkout_sessions_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "transfer_id"],
            ["transfers.org_id", "transfers.id"],
            name=op.f("fk_checkout_sessions_org_id_transfer_id_transfers"),
        ),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_checkout_sessions")),
        sa.UniqueConstraint(
            "org_id",
            "provider_session_id",
            name=op.f("uq_checkout_sessions_org_id_provider_session_id"),
        ),
        sa.UniqueConstraint(
            "org_id", "transfer_id", name=op.f("uq_checkout_sessions_org_id_transfer_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("checkout_sessions")
    op.drop_index("ix_purchase_requests_status_id", table_name="purchase_requests")
    op.drop_index("ix_purchase_requests_org_id_status_id", table_name="purchase_requests")
    op.drop_table("purchase_requests")
