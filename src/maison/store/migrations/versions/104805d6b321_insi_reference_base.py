"""INSi reference base: identities, previous matricules (INSHISTO) and calls to the service

Revision ID: 104805d6b321
Revises: e5b7d2a4c8f1
"""

import sqlalchemy as sa
from alembic import op

revision = "104805d6b321"
down_revision = "e5b7d2a4c8f1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # matricules only as keyed hashes, records only as encrypted payloads (see identity_base.py)
    op.create_table(
        "insref_identity",
        sa.Column("mat_hash", sa.LargeBinary(), nullable=False),
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.Column("birth_name", sa.Text(), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("mat_hash", "oid"),
    )
    with op.batch_alter_table("insref_identity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_insref_identity_traits", ["birth_name", "birth_date", "sex"], unique=False
        )

    op.create_table(
        "insref_history",
        sa.Column("hist_hash", sa.LargeBinary(), nullable=False),
        sa.Column("mat_hash", sa.LargeBinary(), nullable=False),
        sa.Column("oid", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("hist_hash", "mat_hash", "oid"),
    )
    with op.batch_alter_table("insref_history", schema=None) as batch_op:
        batch_op.create_index("ix_insref_history_identity", ["mat_hash", "oid"], unique=False)

    op.create_table(
        "insi_call",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.String(length=32), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("cr", sa.String(length=2), nullable=False),
        sa.Column("mat_hash", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("insi_call", schema=None) as batch_op:
        batch_op.create_index("ix_insi_call_mat_at", ["mat_hash", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("insi_call", schema=None) as batch_op:
        batch_op.drop_index("ix_insi_call_mat_at")
    op.drop_table("insi_call")
    with op.batch_alter_table("insref_history", schema=None) as batch_op:
        batch_op.drop_index("ix_insref_history_identity")
    op.drop_table("insref_history")
    with op.batch_alter_table("insref_identity", schema=None) as batch_op:
        batch_op.drop_index("ix_insref_identity_traits")
    op.drop_table("insref_identity")
