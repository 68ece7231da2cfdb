"""A statement that fails never carries its values into the error text (which reaches tracebacks and
logs): the database engine is built with ``hide_parameters``, on both backends."""
from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.db.models import UsedToken

SECRET_LOOKING = "jti-that-must-not-be-logged-0123456789"


async def test_a_failed_statement_names_no_values(services):
    from datetime import datetime, timedelta, timezone

    expires = datetime.now(timezone.utc) + timedelta(minutes=5)
    async with services.db.write() as session:
        session.add(UsedToken(iss="00000001009990363000", jti=SECRET_LOOKING, expires_at=expires))
    with pytest.raises(IntegrityError) as caught:
        async with services.db.write() as session:
            session.add(UsedToken(iss="00000001009990363000", jti=SECRET_LOOKING, expires_at=expires))
    text = str(caught.value)
    assert "used_tokens" in text  # the statement is still named, for the operator
    assert SECRET_LOOKING not in text and "parameters hidden" in text
