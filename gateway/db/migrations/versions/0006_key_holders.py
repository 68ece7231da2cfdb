"""payload key ring across the fleet (issue 16)

``key_ring``: one row (id 1): the key every process seals with (``brb key promote``) and the keys retired
(``brb key retire``). Seeded by the first process that starts against the database.

``key_holders``: every running process (gateway, relay, dispatcher, retention) records, every few seconds,
the ring keys it holds and the one it seals with. ``brb key promote/rewrap/retire`` refuse unless every
live process holds the key in question.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 19:00:00
"""
from alembic import op
import sqlalchemy as sa
import gateway.db.types


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'key_ring',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('current_id', sa.String(length=40), nullable=False),
        sa.Column('retired', sa.JSON(), nullable=False),
        sa.Column('changed_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'key_holders',
        sa.Column('process_id', sa.String(length=120), primary_key=True),
        sa.Column('role', sa.String(length=40), nullable=False),
        sa.Column('held', sa.JSON(), nullable=False),
        sa.Column('current_id', sa.String(length=40), nullable=False),
        sa.Column('seen_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_key_holders_seen_at', 'key_holders', ['seen_at'])


def downgrade() -> None:
    op.drop_index('ix_key_holders_seen_at', table_name='key_holders')
    op.drop_table('key_holders')
    op.drop_table('key_ring')
