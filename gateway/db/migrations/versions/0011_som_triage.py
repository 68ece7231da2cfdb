"""SOM triage (issue 19)

``triages`` holds the SOM triage of each stay (gateway/triage): the first pass's outcome, its criterion and since
when, the round and the joint decision, the day time alone may change it, and the facts it rests on, sealed.
``triage_changes`` keeps each change of outcome or state with its cause.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import gateway.db.types


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'triages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stay_id', sa.Integer(), nullable=False),
        sa.Column('subject_id', sa.String(length=64), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('moment', sa.String(length=20), nullable=False),
        sa.Column('phase', sa.String(length=20), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('criterion', sa.String(length=40), nullable=False),
        sa.Column('since', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('decision_outcome', sa.String(length=60), nullable=True),
        sa.Column('decided_at', gateway.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('reevaluate_on', sa.Date(), nullable=True),
        sa.Column('facts_ciphertext', sa.LargeBinary(), nullable=True),
        sa.Column('facts_wrapped_key', sa.LargeBinary(), nullable=True),
        sa.Column('facts_key_id', sa.String(length=40), nullable=True),
        sa.Column('created_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['stay_id'], ['stays.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('stay_id'),
    )
    op.create_index('ix_triages_subject_id', 'triages', ['subject_id'])
    op.create_index('ix_triages_reevaluate_on', 'triages', ['reevaluate_on'])
    op.create_table(
        'triage_changes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('triage_id', sa.Integer(), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.Column('criterion', sa.String(length=40), nullable=False),
        sa.Column('previous_outcome', sa.String(length=20), nullable=True),
        sa.Column('cause', sa.String(length=40), nullable=False),
        sa.Column('message_id', sa.String(length=36), nullable=True),
        sa.Column('changed_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['triage_id'], ['triages.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_triage_changes_triage_id', 'triage_changes', ['triage_id'])


def downgrade() -> None:
    op.drop_table('triage_changes')
    op.drop_table('triages')
