"""sealed free text: acknowledgement and withdrawal reasons encrypted at rest (issue 12)

The plain columns ``deliveries.acknowledgement_reason`` and ``consents.withdrawal_reason`` stay, so
rows written before this revision keep their reason readable; new rows leave them NULL and use the
sealed columns. A migration holds no ring key, so it does not encrypt the old values: they remain in
plain text until their delivery or consent goes (see docs/audit-log.md, "Free text").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SEALED = {"deliveries": "acknowledgement_reason", "consents": "withdrawal_reason"}


def upgrade() -> None:
    for table, prefix in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column(f'{prefix}_ciphertext', sa.LargeBinary(), nullable=True))
            batch_op.add_column(sa.Column(f'{prefix}_wrapped_key', sa.LargeBinary(), nullable=True))
            batch_op.add_column(sa.Column(f'{prefix}_key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))


def downgrade() -> None:
    for table, prefix in SEALED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(f'{prefix}_key_id')
            batch_op.drop_column(f'{prefix}_wrapped_key')
            batch_op.drop_column(f'{prefix}_ciphertext')
