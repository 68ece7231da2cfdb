"""trajectory deadlines (issue 18)

``stays`` learns what the notices say of the stay (detention kind, expected release date and its certainty,
the legal framework after release, the probation organisation, when a later stay began); ``deadlines``
holds one row per process norm of a stay (gateway/trajectory/norms.yaml), per round for the plan review.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:00:00
"""
from alembic import op
import sqlalchemy as sa
import gateway.db.types


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

def _stay_columns() -> list[sa.Column]:
    return [
        sa.Column('detention_kind', sa.String(length=20), nullable=True),
        sa.Column('release_date', sa.Date(), nullable=True),
        sa.Column('release_certainty', sa.String(length=20), nullable=True),
        sa.Column('supervision_follows', sa.Boolean(), nullable=True),
        sa.Column('aftercare_lead', sa.String(length=20), nullable=True),
        sa.Column('probation_oin', sa.String(length=20), nullable=True),
        sa.Column('closed_at', gateway.db.types.UtcDateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table('stays') as batch:
        for column in _stay_columns():
            batch.add_column(column)
    op.create_table(
        'deadlines',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('stay_id', sa.Integer(), nullable=False),
        sa.Column('subject_id', sa.String(length=64), nullable=False),
        sa.Column('norm', sa.String(length=40), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('responsible_kind', sa.String(length=20), nullable=False),
        sa.Column('responsible_oin', sa.String(length=20), nullable=True),
        sa.Column('due_on', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('met_at', gateway.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('met_by_message_id', sa.String(length=36), nullable=True),
        sa.Column('days_late', sa.Integer(), nullable=True),
        sa.Column('overdue_at', gateway.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['stay_id'], ['stays.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('stay_id', 'norm', 'round'),
    )
    op.create_index('ix_deadlines_stay_id', 'deadlines', ['stay_id'])
    op.create_index('ix_deadlines_subject_id', 'deadlines', ['subject_id'])
    op.create_index('ix_deadlines_status_due', 'deadlines', ['status', 'due_on'])
    op.create_index('ix_deadlines_responsible_due', 'deadlines', ['responsible_oin', 'due_on'])


def downgrade() -> None:
    op.drop_table('deadlines')
    with op.batch_alter_table('stays') as batch:
        for column in reversed(_stay_columns()):
            batch.drop_column(column.name)
