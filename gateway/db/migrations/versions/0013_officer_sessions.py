"""Officer sessions (OWASP ASVS 3.3.1)

``officer_sessions`` holds each login to the audit pages (gateway/pages/officer.py): the SHA-256 of the random
session id the signed cookie carries, the officer and organisation, when it began, was last used and expires,
and when and why it ended (logout, idle, expired, ended-by-operator). A cookie whose row is missing or ended
opens no page: logout and expiry end the session on the server, not only in one browser.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 21:30:00
"""
from alembic import op
import sqlalchemy as sa
import gateway.db.types


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'officer_sessions',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('officer_sub', sa.String(length=255), nullable=False),
        sa.Column('officer_oin', sa.String(length=20), nullable=False),
        sa.Column('created_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', gateway.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', gateway.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_officer_sessions_officer_sub', 'officer_sessions', ['officer_sub'])
    op.create_index('ix_officer_sessions_officer_oin', 'officer_sessions', ['officer_oin'])


def downgrade() -> None:
    op.drop_table('officer_sessions')
