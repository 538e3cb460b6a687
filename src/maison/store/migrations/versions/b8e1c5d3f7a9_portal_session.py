"""Portal sessions: server-side, keyed by the hash of the cookie, content encrypted

Revision ID: b8e1c5d3f7a9
Revises: a7d3c9e1f5b2
"""

import sqlalchemy as sa
from alembic import op

revision = "b8e1c5d3f7a9"
down_revision = "a7d3c9e1f5b2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # see store/portal_sessions.py
    op.create_table(
        "portal_session",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("idle_until", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.create_index("ix_portal_session_ends", ["ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("portal_session", schema=None) as batch_op:
        batch_op.drop_index("ix_portal_session_ends")
    op.drop_table("portal_session")
