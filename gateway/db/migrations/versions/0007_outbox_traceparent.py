"""outbox traceparent (issue 16)

``outbox.traceparent``: the W3C trace context of the transaction that wrote the event; the relay publishes
it as the CloudEvents distributed-tracing extension attribute, so a consumer (and the webhook dispatcher)
can join the event to the request that caused it. NULL for rows written outside any trace (and before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 18:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('outbox', sa.Column('traceparent', sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('traceparent')
