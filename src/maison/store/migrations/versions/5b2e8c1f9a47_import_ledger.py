"""Import ledger: the resources an external source maintains, their content hash and last run

Revision ID: 5b2e8c1f9a47
Revises: 104805d6b321
"""

import sqlalchemy as sa
from alembic import op

revision = "5b2e8c1f9a47"
down_revision = "104805d6b321"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # see store/import_ledger.py: re-imports compare hashes here, without decrypting bodies
    op.create_table(
        "import_ledger",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("source", "res_type", "res_id"),
    )
    with op.batch_alter_table("import_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_import_ledger_source_run", ["source", "run"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_import_ledger_source_run")
    op.drop_table("import_ledger")
