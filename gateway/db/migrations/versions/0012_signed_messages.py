"""Signed messages (issue 21)

``messages`` keeps each payload's proof (brb_client/proof.py): the salts of its sections, sealed like the
payload; the digest of its digest form; the sender's detached JWS over that form. ``audit_records`` gets the
payload digest and the signature's digest of a send, hashed into the chain only when set.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('salts_ciphertext', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('salts_wrapped_key', sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column('salts_key_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('payload_digest', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('signature', sa.String(length=4000), nullable=True))
    with op.batch_alter_table('audit_records') as batch:
        batch.add_column(sa.Column('payload_digest', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('signature_digest', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_records') as batch:
        batch.drop_column('signature_digest')
        batch.drop_column('payload_digest')
    with op.batch_alter_table('messages') as batch:
        for column in ('signature', 'payload_digest', 'salts_key_id', 'salts_wrapped_key', 'salts_ciphertext'):
            batch.drop_column(column)
