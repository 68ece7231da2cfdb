"""stays: the competent municipality per subject and prison stay (art. 18a lid 4 Pbw)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 13:40:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import gateway.db.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('arrival_date', sa.Date(), nullable=True),
    sa.Column('prison_oin', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('residence_cbs', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    sa.Column('intended_cbs', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=True),
    sa.Column('created_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stays_subject_id'), ['subject_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stays_subject_id'))
    op.drop_table('stays')
