"""PostgreSQL: prefix searches on string values use the index under any collation

Revision ID: c3a1f0e2d9b4
Revises: 9d69077f666d
"""

from alembic import op

revision = "c3a1f0e2d9b4"
down_revision = "9d69077f666d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_idx_string_value_folded", table_name="idx_string")
    op.create_index(
        "ix_idx_string_value_folded",
        "idx_string",
        ["res_type", "code", "value_folded"],
        postgresql_ops={"value_folded": "text_pattern_ops"},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_idx_string_value_folded", table_name="idx_string")
    op.create_index(
        "ix_idx_string_value_folded", "idx_string", ["res_type", "code", "value_folded"]
    )
