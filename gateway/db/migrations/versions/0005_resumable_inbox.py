"""resumable inbox and subscription filters (issue 15)

``deliveries.inbox_position``: a recipient's deliveries numbered 1, 2, 3 ... in the order their send
transactions committed. The send transaction takes the next number from ``organisations.inbox_position``
with a conditional UPDATE, which holds the recipient's row until commit: a later position cannot become
visible before an earlier one, so a connector resuming from "after position n" misses nothing (a
timestamp cursor can: on PostgreSQL a send that started earlier may commit later). Existing deliveries
are numbered by (created_at, id), the inbox's order so far.

``subscriptions.message_types``: only events about these message types reach the callback (NULL: all).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('organisations', sa.Column('inbox_position', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('subscriptions', sa.Column('message_types', sa.JSON(), nullable=True))
    op.add_column('deliveries', sa.Column('inbox_position', sa.BigInteger(), nullable=True))
    op.execute(  # one pass (UPDATE ... FROM: PostgreSQL, SQLite >= 3.33), not a window per row
        "UPDATE deliveries SET inbox_position = numbered.n FROM (SELECT id AS delivery_id, ROW_NUMBER() OVER "
        "(PARTITION BY recipient_oin ORDER BY created_at, id) AS n FROM deliveries) AS numbered "
        "WHERE numbered.delivery_id = deliveries.id")
    op.execute(
        "UPDATE organisations SET inbox_position = COALESCE((SELECT MAX(d.inbox_position) FROM deliveries d "
        "WHERE d.recipient_oin = organisations.oin), 0)")
    with op.batch_alter_table('deliveries') as batch:
        batch.alter_column('inbox_position', existing_type=sa.BigInteger(), nullable=False)
    op.create_index('ux_deliveries_inbox_position', 'deliveries', ['recipient_oin', 'inbox_position'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_deliveries_inbox_position', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('inbox_position')
    op.drop_column('subscriptions', 'message_types')
    with op.batch_alter_table('organisations') as batch:
        batch.drop_column('inbox_position')
