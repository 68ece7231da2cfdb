"""Per-organisation rate limits (issue 17): BRB_RATE_LIMIT_PER_MINUTE for everyone, BRB_RATE_LIMIT_OVERRIDES
(a JSON object OIN -> requests per minute) for an organisation that needs more, e.g. DJI's bulk sync."""
from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.auth.dependencies import RateLimiter
from gateway.problems import PROBLEM_BASE
from gateway.services import Services
from gateway.settings import Settings
from tests.conftest import settings_for

INBOX = "/api/v1/inbox"
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # a per-process limiter: no backend in it


async def admitted(client, org, tries: int) -> int:
    """How many of ``tries`` requests get in before the first 429 (which must say when to come back)."""
    for n in range(tries):
        r = await client.get(INBOX, headers=org.headers())
        if r.status_code == 429:
            assert r.json()["type"] == PROBLEM_BASE + "rate-limited", r.text
            assert int(r.headers["Retry-After"]) >= 1
            return n
        assert r.status_code == 200, r.text
    return tries


@sqlite_only
async def test_an_override_lets_one_organisation_send_more_and_the_others_keep_the_default(database, orgs):
    svc = Services.from_settings(settings_for(database, rate_limit_per_minute=5,
                                              rate_limit_overrides={orgs.vught.oin: 12}))
    try:
        app = create_app(services=svc)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            assert await admitted(client, orgs.vught, 20) == 12
            assert await admitted(client, orgs.amsterdam, 20) == 5
            r = await client.get(INBOX, headers=orgs.vught.headers())
            assert r.status_code == 429 and "more than 12 requests a minute" in r.json()["detail"]
            r = await client.get(INBOX, headers=orgs.amsterdam.headers())
            assert r.status_code == 429 and "more than 5 requests a minute" in r.json()["detail"]
    finally:
        await svc.db.dispose()


def test_the_overrides_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("BRB_RATE_LIMIT_OVERRIDES", json.dumps({"00000001001234567000": 6000}))
    assert Settings().rate_limit_overrides == {"00000001001234567000": 6000}
    monkeypatch.setenv("BRB_RATE_LIMIT_OVERRIDES", json.dumps({"vught": 6000}))
    with pytest.raises(ValidationError, match="20-digit OINs"):
        Settings()
    monkeypatch.setenv("BRB_RATE_LIMIT_OVERRIDES", json.dumps({"00000001001234567000": 0}))
    with pytest.raises(ValidationError):
        Settings()


def test_the_limiter_refills_at_each_organisations_own_rate():
    limiter = RateLimiter(60, {"a": 600})
    assert limiter.limit("a") == 600 and limiter.limit("b") == 60 and limiter.limit("b", 120) == 120
    for _ in range(600):
        assert limiter.take("a") == 0
    assert 0 < limiter.take("a") <= 0.1  # 10 a second: the next one within a tenth of a second
    for _ in range(60):
        assert limiter.take("b") == 0
    assert 0.9 < limiter.take("b") <= 1.0
