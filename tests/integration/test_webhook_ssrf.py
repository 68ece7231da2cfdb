"""Webhook callbacks never reach private, loopback or link-local addresses (SSRF, issue 12): refused when
the subscription is made, and again at every delivery attempt (the name may resolve elsewhere by then:
DNS rebinding). `allow_insecure_loopback_webhooks` (demo, tests) lifts both checks."""
import json
import uuid

import httpx
import pytest
from sqlmodel import select

from gateway.db.models import WebhookDelivery
from gateway.webhooks.dispatcher import Dispatcher, enqueue
from gateway.webhooks.subscriptions import non_public_address

PRIVATE = [
    "https://127.0.0.1/hooks", "https://localhost:8443/hooks", "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/hooks", "https://172.16.3.4/hooks", "https://192.168.1.1/hooks", "https://100.64.0.1/hooks",
    "https://0.0.0.0/hooks", "https://224.0.0.1/hooks", "https://240.0.0.1/hooks", "https://[::1]/hooks",
    "https://[fe80::1]/hooks", "https://[fd00::1]/hooks", "https://[::ffff:127.0.0.1]/hooks",
    "https://[::ffff:169.254.169.254]/hooks", "https://[::ffff:10.1.2.3]/hooks", "https://[::]/hooks",
    "https://[ff02::1]/hooks", "https://[2002:a00:1::]/hooks", "https://[64:ff9b::a9fe:a9fe]/hooks",
]


@pytest.fixture
def strict(services):
    services.settings.allow_insecure_loopback_webhooks = False
    yield services
    services.settings.allow_insecure_loopback_webhooks = True


@pytest.mark.parametrize("url", PRIVATE)
async def test_non_public_addresses_are_recognised(url):
    assert await non_public_address(url, timeout=5) is not None


@pytest.mark.parametrize("url", ["https://93.184.215.14/hooks", "https://[2606:4700::1111]/hooks",
                                 "https://connector.amsterdam.example/brb"])
async def test_public_and_unresolvable_addresses_pass(url):
    assert await non_public_address(url, timeout=5) is None


async def test_a_subscription_to_a_private_address_is_refused(client, orgs, strict):
    for url in PRIVATE:
        r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(),
                              json={"callbackUrl": url, "eventTypes": ["message.delivered"]})
        assert r.status_code == 422, (url, r.text)
        problem = r.json()
        assert problem["type"].endswith("/validation-failed")
        assert problem["detail"].startswith("1 invalid field(s): /callbackUrl: "), problem
        # an IPv6 literal is no callback host at all (DNS names and IPv4 only); every other one is named private
        assert ("private" in problem["detail"]) != url.startswith("https://["), problem
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(),
                          json={"callbackUrl": "https://93.184.215.14/brb", "eventTypes": ["message.delivered"]})
    assert r.status_code == 201, r.text


async def test_with_the_demo_setting_a_loopback_subscription_is_accepted(client, orgs, services):
    assert services.settings.allow_insecure_loopback_webhooks
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(),
                          json={"callbackUrl": "http://127.0.0.1:9/hooks", "eventTypes": ["message.delivered"]})
    assert r.status_code == 201, r.text


async def test_a_delivery_to_a_name_that_now_resolves_privately_is_not_sent(client, orgs, services):
    # registered while allowed (as if the name resolved publicly then); at delivery time it resolves to loopback
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(),
                          json={"callbackUrl": "http://localhost:9/hooks", "eventTypes": ["message.delivered"]})
    assert r.status_code == 201, r.text
    services.settings.allow_insecure_loopback_webhooks = False
    requests = []
    transport = httpx.MockTransport(lambda request: requests.append(request) or httpx.Response(204))
    dispatcher = Dispatcher(services, client=httpx.AsyncClient(transport=transport))
    try:
        event_id = str(uuid.uuid4())
        assert await enqueue(services, event_id, "message.delivered", [orgs.amsterdam.oin], json.dumps({"id": event_id})) == 1
        assert await dispatcher.send_due() == 1
    finally:
        services.settings.allow_insecure_loopback_webhooks = True
        await dispatcher.client.aclose()
    assert requests == []
    async with services.db.read() as session:
        row = (await session.exec(select(WebhookDelivery))).one()
    assert row.attempts == 1 and row.status == "pending" and row.delivered_at is None
    assert row.last_error == "target resolves to a private address (127.0.0.1)"


async def test_with_the_demo_setting_a_loopback_delivery_is_sent(client, orgs, services):
    r = await client.post("/api/v1/subscriptions", headers=orgs.amsterdam.headers(),
                          json={"callbackUrl": "http://localhost:9/hooks", "eventTypes": ["message.delivered"]})
    assert r.status_code == 201
    requests = []
    transport = httpx.MockTransport(lambda request: requests.append(request) or httpx.Response(204))
    dispatcher = Dispatcher(services, client=httpx.AsyncClient(transport=transport))
    try:
        event_id = str(uuid.uuid4())
        await enqueue(services, event_id, "message.delivered", [orgs.amsterdam.oin], json.dumps({"id": event_id}))
        assert await dispatcher.send_due() == 1
    finally:
        await dispatcher.client.aclose()
    assert [str(r.url) for r in requests] == ["http://localhost:9/hooks"]
