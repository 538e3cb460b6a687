"""Terminology content: code system versions, concepts, designations, is-a edges, value sets and maps

Revision ID: 7c4e9a1d2b60
Revises: 5b2e8c1f9a47
"""

import sqlalchemy as sa
from alembic import op

revision = "7c4e9a1d2b60"
down_revision = "5b2e8c1f9a47"
branch_labels = None
depends_on = None

# codes compare byte-wise on PostgreSQL too (see store/schema.py)
CODE = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    # see terminology/sql_source.py: what `maison terminology load` fills
    op.create_table(
        "term_system",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content", sa.String(length=16), nullable=False),
        sa.Column("oid", sa.Text(), nullable=True),
        sa.Column("hierarchical", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("concept_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.String(length=32), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("term_system", schema=None) as batch_op:
        batch_op.create_index("ux_term_system_url_version", ["url", "version"], unique=True)
        batch_op.create_index("ix_term_system_oid", ["oid"], unique=False)

    op.create_table(
        "term_concept",
        sa.Column("system_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("code", CODE, nullable=False),
        sa.Column("display", sa.Text(), nullable=True),
        sa.Column("text_folded", sa.Text(), nullable=True),
        sa.Column("inactive", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("properties", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("system_id", "code"),
    )

    op.create_table(
        "term_designation",
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("code", CODE, nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("use_system", sa.Text(), nullable=True),
        sa.Column("use_code", sa.Text(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("preferred", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    with op.batch_alter_table("term_designation", schema=None) as batch_op:
        batch_op.create_index("ix_term_designation_code", ["system_id", "code"], unique=False)

    op.create_table(
        "term_parent",
        sa.Column("system_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("child", CODE, nullable=False),
        sa.Column("parent", CODE, nullable=False),
        sa.PrimaryKeyConstraint("system_id", "child", "parent"),
    )
    with op.batch_alter_table("term_parent", schema=None) as batch_op:
        batch_op.create_index(
            "ix_term_parent_parent", ["system_id", "parent", "child"], unique=False
        )

    op.create_table(
        "term_resource",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("res_type", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("oid", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("term_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ux_term_resource_url_version", ["res_type", "url", "version"], unique=True
        )
        batch_op.create_index("ix_term_resource_oid", ["res_type", "oid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("term_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_term_resource_oid")
        batch_op.drop_index("ux_term_resource_url_version")
    op.drop_table("term_resource")
    with op.batch_alter_table("term_parent", schema=None) as batch_op:
        batch_op.drop_index("ix_term_parent_parent")
    op.drop_table("term_parent")
    with op.batch_alter_table("term_designation", schema=None) as batch_op:
        batch_op.drop_index("ix_term_designation_code")
    op.drop_table("term_designation")
    op.drop_table("term_concept")
    with op.batch_alter_table("term_system", schema=None) as batch_op:
        batch_op.drop_index("ix_term_system_oid")
        batch_op.drop_index("ux_term_system_url_version")
    op.drop_table("term_system")
