"""Patient accounts: Mon espace santé sign-in credentials bound to a qualified INS

Revision ID: f2b8d4a6c0e3
Revises: 7c4e9a1d2b60
"""

import sqlalchemy as sa
from alembic import op

revision = "f2b8d4a6c0e3"
down_revision = "7c4e9a1d2b60"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # see store/accounts.py: scrypt password hash, TOTP secret encrypted with the data keys
    op.create_table(
        "patient_account",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("ins", sa.String(length=32), nullable=False),
        sa.Column("ins_system", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary(), nullable=False),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("failed_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("account_id"),
    )
    with op.batch_alter_table("patient_account", schema=None) as batch_op:
        batch_op.create_index("ux_patient_account_ins", ["ins"], unique=True)
        batch_op.create_index("ux_patient_account_patient", ["patient_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("patient_account", schema=None) as batch_op:
        batch_op.drop_index("ux_patient_account_patient")
        batch_op.drop_index("ux_patient_account_ins")
    op.drop_table("patient_account")
