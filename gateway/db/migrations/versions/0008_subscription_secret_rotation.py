"""subscription secret rotation with an overlap (issue 16)

A subscriber rotates its webhook secret with ``POST /subscriptions/{id}/secret-rotation``: the old secret,
sealed like the new one, keeps signing beside it until ``previous_secret_until``, so the subscriber can
switch its verification without missing a delivery (Standard Webhooks: several signatures in one header).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:10:00
"""
from alembic import op
import sqlalchemy as sa

import gateway.db.types


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

COLUMNS = ('previous_secret_ciphertext', 'previous_secret_wrapped_key', 'previous_secret_key_id', 'previous_secret_until')


def upgrade() -> None:
    op.add_column('subscriptions', sa.Column('previous_secret_ciphertext', sa.LargeBinary(), nullable=True))
    op.add_column('subscriptions', sa.Column('previous_secret_wrapped_key', sa.LargeBinary(), nullable=True))
    op.add_column('subscriptions', sa.Column('previous_secret_key_id', sa.String(length=40), nullable=True))
    op.add_column('subscriptions', sa.Column('previous_secret_until', gateway.db.types.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscriptions') as batch:
        for column in COLUMNS:
            batch.drop_column(column)
