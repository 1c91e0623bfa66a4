"""the ledger core

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:44:01.073993
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("refusal", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "actor", "key", name=op.f("pk_idempotency_records")),
    )
    op.create_table(
        "orgs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("invite_code", sa.String(length=64), nullable=False),
        sa.Column("returnable", sa.Boolean(), nullable=False),
        sa.Column("auto_enabled", sa.Boolean(), nullable=False),
        sa.Column("auto_bundle", sa.BigInteger(), nullable=False),
        sa.Column("auto_max_per_member", sa.BigInteger(), nullable=False),
        sa.Column("rate_licensed", sa.BigInteger(), nullable=False),
        sa.Column("rate_unlicensed", sa.BigInteger(), nullable=False),
        sa.Column("rate_external", sa.BigInteger(), nullable=False),
        sa.Column("licensed_seats", sa.Integer(), nullable=False),
        sa.Column("unlicensed_seats", sa.Integer(), nullable=False),
        sa.Column("external_seats", sa.Integer(), nullable=False),
        sa.Column("metered_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("auto_bundle > 0", name=op.f("ck_orgs_bundle_positive")),
        sa.CheckConstraint(
            "auto_max_per_member >= 0 AND auto_max_per_member % auto_bundle = 0",
            name=op.f("ck_orgs_cap_multiple_of_bundle"),
        ),
        sa.CheckConstraint(
            "licensed_seats >= 0 AND unlicensed_seats >= 0 AND external_seats >= 0",
            name=op.f("ck_orgs_seats_not_negative"),
        ),
        sa.CheckConstraint(
            "rate_licensed >= 0 AND rate_unlicensed >= 0 AND rate_external >= 0",
            name=op.f("ck_orgs_rates_not_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orgs")),
        sa.UniqueConstraint("invite_code", name=op.f("uq_orgs_invite_code")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("is_operator", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "groups",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_groups_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_groups")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_groups_org_id_name")),
    )
    op.create_table(
        "invitations",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'accepted', 'revoked', 'expired')",
            name=op.f("ck_invitations_status"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_invitations_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_invitations")),
    )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.create_index("ix_invitations_org_id_status", ["org_id", "status"], unique=False)

    op.create_table(
        "members",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("seat", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("allocated_total", sa.BigInteger(), nullable=False),
        sa.Column("auto_allocated_total", sa.BigInteger(), nullable=False),
        sa.Column("used_total", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('owner', 'manager', 'member')", name=op.f("ck_members_role")),
        sa.CheckConstraint(
            "seat IN ('licensed', 'unlicensed', 'external')", name=op.f("ck_members_seat")
        ),
        sa.CheckConstraint("status IN ('active', 'removed')", name=op.f("ck_members_status")),
        sa.CheckConstraint(
            "allocated_total >= 0 AND auto_allocated_total >= 0 AND used_total >= 0",
            name=op.f("ck_members_totals_not_negative"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_members_org_id_orgs")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_members_user_id_users")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_members")),
        sa.UniqueConstraint("org_id", "user_id", name=op.f("uq_members_org_id_user_id")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_members_org_id_status_role", ["org_id", "status", "role"], unique=False
        )

    op.create_table(
        "accounts",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "(kind = 'wallet' AND member_id IS NOT NULL) OR (kind <> 'wallet' AND member_id IS NULL)",
            name=op.f("ck_accounts_wallet_has_member"),
        ),
        sa.CheckConstraint(
            "kind IN ('pool', 'wallet', 'purchases', 'usage', 'metered')",
            name=op.f("ck_accounts_kind"),
        ),
        sa.CheckConstraint(
            "kind NOT IN ('pool', 'wallet') OR balance >= 0", name=op.f("ck_accounts_not_overdrawn")
        ),
        sa.CheckConstraint(
            "held >= 0 AND (held = 0 OR held <= balance)", name=op.f("ck_accounts_held_covered")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "member_id"],
            ["members.org_id", "members.id"],
            name=op.f("fk_accounts_org_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_accounts_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("org_id", "member_id", name=op.f("uq_accounts_org_id_member_id")),
    )
    op.create_table(
        "group_members",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id", "group_id"],
            ["groups.org_id", "groups.id"],
            name=op.f("fk_group_members_org_id_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "member_id"],
            ["members.org_id", "members.id"],
            name=op.f("fk_group_members_org_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("org_id", "group_id", "member_id", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_group_members_org_id_member_id", ["org_id", "member_id"], unique=False
        )

    op.create_table(
        "holds",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'captured', 'voided', 'expired')", name=op.f("ck_holds_status")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_holds_amount_positive")),
        sa.CheckConstraint(
            "captured IS NULL OR (captured > 0 AND captured <= amount)",
            name=op.f("ck_holds_capture"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "member_id"],
            ["members.org_id", "members.id"],
            name=op.f("fk_holds_org_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_holds_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_holds")),
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_holds_org_id_member_id_status", ["org_id", "member_id", "status"], unique=False
        )

    op.create_table(
        "usage_totals",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("total >= 0", name=op.f("ck_usage_totals_total_not_negative")),
        sa.ForeignKeyConstraint(
            ["org_id", "member_id"],
            ["members.org_id", "members.id"],
            name=op.f("fk_usage_totals_org_id_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("org_id", "member_id", "metric", name=op.f("pk_usage_totals")),
    )
    op.create_table(
        "transfers",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("debit_account_id", sa.String(length=48), nullable=False),
        sa.Column("credit_account_id", sa.String(length=48), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.String(length=40), nullable=True),
        sa.Column("hold_id", sa.String(length=40), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_transfers_two_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "credit_account_id"],
            ["accounts.org_id", "accounts.id"],
            name=op.f("fk_transfers_org_id_credit_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "debit_account_id"],
            ["accounts.org_id", "accounts.id"],
            name=op.f("fk_transfers_org_id_debit_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id", "member_id"],
            ["members.org_id", "members.id"],
            name=op.f("fk_transfers_org_id_member_id_members"),
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_transfers_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", "id", name=op.f("pk_transfers")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index("ix_transfers_org_id_batch_id", ["org_id", "batch_id"], unique=False)
        batch_op.create_index(
            "ix_transfers_org_id_member_id_id", ["org_id", "member_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_org_id_member_id_id")
        batch_op.drop_index("ix_transfers_org_id_batch_id")

    op.drop_table("transfers")
    op.drop_table("usage_totals")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_org_id_member_id_status")

    op.drop_table("holds")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_group_members_org_id_member_id")

    op.drop_table("group_members")
    op.drop_table("accounts")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index("ix_members_org_id_status_role")

    op.drop_table("members")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_index("ix_invitations_org_id_status")

    op.drop_table("invitations")
    op.drop_table("groups")
    op.drop_table("users")
    op.drop_table("orgs")
    op.drop_table("idempotency_records")
