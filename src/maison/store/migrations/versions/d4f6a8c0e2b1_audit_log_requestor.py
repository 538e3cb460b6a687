"""Audit trail: index the entries by the IDNPS of the requesting agent (a professional's own log)

Revision ID: d4f6a8c0e2b1
Revises: b8e1c5d3f7a9
"""

import sqlalchemy as sa
from alembic import op

revision = "d4f6a8c0e2b1"
down_revision = "b8e1c5d3f7a9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # see store/audit_log.py: an index column outside the hash chain's canonical entry, filled
    # on append. Entries written before keep NULL: their requestor is only inside the encrypted
    # body, which this migration cannot read (it holds no data key), so no backfill here.
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requestor_idnps", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_audit_log_requestor", ["requestor_idnps", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_requestor")
        batch_op.drop_column("requestor_idnps")
