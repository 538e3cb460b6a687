"""Composite search parameters: index rows of one repetition share a group number

Revision ID: e5b7d2a4c8f1
Revises: c3a1f0e2d9b4
"""

import sqlalchemy as sa
from alembic import op

revision = "e5b7d2a4c8f1"
down_revision = "c3a1f0e2d9b4"
branch_labels = None
depends_on = None

TABLES = (
    "idx_string",
    "idx_token",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_reference",
    "idx_uri",
)


def upgrade() -> None:
    # a nullable column without default: no table rewrite on either database
    for table in TABLES:
        op.add_column(table, sa.Column("grp", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("grp")
