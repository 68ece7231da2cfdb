"""race guards and retention indexes (issue 13)

``ux_organisations_active_cbs``: one active municipality and one active mayor per CBS code, held by the
database, so two registrations racing past the registry's check cannot both commit. It refuses to be
created while duplicates exist: deactivate all but one holder of each code first (the error names them).

Retention: the purge job asks for copies still to purge whose time has come, and for purged messages
still holding a ciphertext. Purged rows stay as history for good, so the indexes are partial: they hold
only the open copies (``ix_deliveries_purge_open`` replaces the full ``ix_deliveries_purge_due_at``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

OPEN = sa.text("purged_at IS NULL")
CIPHERTEXT_LEFT = sa.text("purged_at IS NOT NULL AND payload_ciphertext IS NOT NULL")
ACTIVE = sa.text("active")


def _partial(where: sa.TextClause) -> dict:
    return {"postgresql_where": where, "sqlite_where": where}


def _refuse_duplicate_codes() -> None:
    duplicates = op.get_bind().execute(sa.text(
        "SELECT kind, cbs_code, COUNT(*) FROM organisations WHERE active AND cbs_code IS NOT NULL "
        "GROUP BY kind, cbs_code HAVING COUNT(*) > 1")).all()
    if duplicates:
        named = ", ".join(f"{kind}:{code} ({n} active)" for kind, code, n in duplicates)
        raise RuntimeError(f"deactivate all but one organisation per CBS code before upgrading: {named}")


def upgrade() -> None:
    _refuse_duplicate_codes()
    op.create_index('ux_organisations_active_cbs', 'organisations', ['kind', 'cbs_code'], unique=True, **_partial(ACTIVE))
    op.create_index('ix_deliveries_purge_open', 'deliveries', ['purge_due_at'], **_partial(OPEN))
    op.drop_index('ix_deliveries_purge_due_at', table_name='deliveries')
    op.create_index('ix_messages_sender_purge_open', 'messages', ['sender_purge_due_at'], **_partial(OPEN))
    op.create_index('ix_messages_ciphertext_left', 'messages', ['purged_at'], **_partial(CIPHERTEXT_LEFT))


def downgrade() -> None:
    op.drop_index('ix_messages_ciphertext_left', table_name='messages')
    op.drop_index('ix_messages_sender_purge_open', table_name='messages')
    op.create_index('ix_deliveries_purge_due_at', 'deliveries', ['purge_due_at'], unique=False)
    op.drop_index('ix_deliveries_purge_open', table_name='deliveries')
    op.drop_index('ux_organisations_active_cbs', table_name='organisations')
