"""registry version counter (issue 17)

``registry_version``: one row (id 1), seeded with 0. Every change of an organisation or key (registration,
key added, key revoked, deactivation) increments it in the same transaction; every gateway process polls it
and clears its cache of parsed keys when it moves, so a revocation is effective everywhere within
``BRB_KEY_CACHE_POLL_SECONDS`` (gateway/auth/keycache.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        'registry_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('version', sa.BigInteger(), nullable=False, server_default='0'),
    )
    op.bulk_insert(table, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    op.drop_table('registry_version')
