"""The gateway's signed receipts (gateway/receipts.py) as a connector checks them (brb_client.receipts): real
keys, real signatures, the receipt changed the way a forger or a broken store would change it."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest

from brb_client import ReceiptInvalid, verify_receipt
from gateway.auth.mint import new_key_pair
from gateway.demo import ADDED_LATER
from gateway.receipts import ReceiptSigner, acknowledgement_claims, send_receipt_claims
from gateway.settings import Settings
from tests.conftest import RECEIPT_SIGNING_KEY

ISSUER = "urn:nl:brb:gateway"
AT = datetime(2026, 11, 23, 9, 20, 12, 118000, tzinfo=timezone.utc)
MESSAGE_ID = "0f9e4c1a-6b2d-4e8f-9a31-7c5d2e8b4a10"
VUGHT, AMSTERDAM, MAYOR = "00000001001234567000", "00000001009990363000", "00000001009990363100"
DIGEST = "sha-256:" + "A" * 43


@pytest.fixture(scope="module")
def signer() -> ReceiptSigner:
    return ReceiptSigner(json.loads(RECEIPT_SIGNING_KEY), ISSUER)


def ack(signer: ReceiptSigner, **changes) -> str:
    claims = acknowledgement_claims(message_id=MESSAGE_ID, recipient_oin=AMSTERDAM, sender_oin=VUGHT, status="accepted",
                                    acknowledged_at=AT, payload_digest=DIGEST)
    return signer.sign({**claims, **changes}, now=AT)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def flip(part: str, index: int) -> str:
    """``part`` with its ``index``-th character replaced by another base64url character."""
    char = part[index]
    return part[:index] + ("A" if char != "A" else "B") + part[index + 1:]


def test_an_acknowledgement_receipt_verifies_and_names_what_the_gateway_recorded(signer):
    receipt = ack(signer)
    claims = verify_receipt(receipt, signer.jwks(), issuer=ISSUER)
    assert claims == {"receipt": "acknowledgement", "messageId": MESSAGE_ID, "recipient": AMSTERDAM, "sender": VUGHT,
                      "status": "accepted", "acknowledgedAt": "2026-11-23T09:20:12.118000Z", "payloadDigest": DIGEST,
                      "iss": ISSUER, "iat": int(AT.timestamp())}
    header = json.loads(unb64(receipt.split(".")[0]))
    assert header == {"alg": "ES256", "kid": "test-receipts-1", "typ": "brb-receipt+jwt"}


def test_a_send_receipt_names_the_message_its_digests_and_every_recipients_decision(signer):
    claims = send_receipt_claims(
        message_id=MESSAGE_ID, message_type="dr-plan", version=1, sender_oin=VUGHT, subject_id="sub-5d41",
        created_at=AT, payload_digest=DIGEST, signature_digest=None,
        deliveries=[{"recipient": AMSTERDAM, "decision": "allow-with-redaction", "withheld": ["health"]},
                    {"recipient": MAYOR, "decision": "allow", "withheld": []}])
    verified = verify_receipt(signer.sign(claims), signer.jwks())
    assert verified["receipt"] == "send" and verified["messageId"] == MESSAGE_ID and verified["type"] == "dr-plan"
    assert (verified["version"], verified["sender"], verified["subjectId"]) == (1, VUGHT, "sub-5d41")
    assert verified["createdAt"] == "2026-11-23T09:20:12.118000Z"
    assert (verified["payloadDigest"], verified["signatureDigest"]) == (DIGEST, None)
    assert verified["recipients"] == [{"recipient": AMSTERDAM, "decision": "allow-with-redaction", "withheld": ["health"]},
                                      {"recipient": MAYOR, "decision": "allow", "withheld": []}]
    assert verified["iss"] == ISSUER and isinstance(verified["iat"], int)


def test_the_claims_cannot_overrule_the_issuer(signer):
    assert verify_receipt(ack(signer, iss="urn:someone-else"), signer.jwks())["iss"] == ISSUER


@pytest.mark.parametrize("part", [1, 2], ids=["payload", "signature"])
def test_one_changed_character_in_the_payload_or_the_signature_is_refused(signer, part):
    parts = ack(signer).split(".")
    for index in (0, len(parts[part]) // 2, len(parts[part]) - 2):
        altered = list(parts)
        altered[part] = flip(parts[part], index)
        with pytest.raises(ReceiptInvalid):
            verify_receipt(".".join(altered), signer.jwks())


def test_a_payload_rewritten_to_another_status_is_refused_with_the_signature_named(signer):
    header, payload, signature = ack(signer).split(".")
    claims = json.loads(unb64(payload))
    forged = ".".join([header, b64(json.dumps({**claims, "status": "rejected"}).encode()), signature])
    with pytest.raises(ReceiptInvalid, match="signature does not verify"):
        verify_receipt(forged, signer.jwks())


def test_a_receipt_signed_by_another_key_with_the_same_kid_is_refused(signer):
    impostor = ReceiptSigner(new_key_pair(kid="test-receipts-1")[0], ISSUER)
    with pytest.raises(ReceiptInvalid, match="signature does not verify"):
        verify_receipt(ack(impostor), signer.jwks())


def test_a_jwks_without_the_kid_is_refused(signer):
    other = ReceiptSigner(new_key_pair(kid="brb-receipts-other")[0], ISSUER)
    with pytest.raises(ValueError) as refused:  # a ReceiptInvalid is a ValueError, with the reason as its message
        verify_receipt(ack(signer), other.jwks())
    assert isinstance(refused.value, ReceiptInvalid)
    assert str(refused.value) == "invalid receipt: unknown kid 'test-receipts-1': no such key in the JWK Set"
    with pytest.raises(ReceiptInvalid, match="unknown kid"):
        verify_receipt(ack(signer), {"keys": []})


@pytest.mark.parametrize("receipt", ["", "not-a-jws", "a.b", "a.b.c.d", "!!.??.**"])
def test_malformed_receipts_are_refused(signer, receipt):
    with pytest.raises(ReceiptInvalid):
        verify_receipt(receipt, signer.jwks())


def test_another_typ_or_alg_or_issuer_is_refused(signer):
    header, payload, signature = ack(signer).split(".")
    for changed in ({"typ": "JWT"}, {"alg": "HS256"}, {"alg": "none"}):
        original = json.loads(unb64(header))
        with pytest.raises(ReceiptInvalid):
            verify_receipt(".".join([b64(json.dumps({**original, **changed}).encode()), payload, signature]), signer.jwks())
    with pytest.raises(ReceiptInvalid, match="issued by"):
        verify_receipt(ack(signer), signer.jwks(), issuer="urn:nl:brb:another-gateway")


def test_the_jwks_holds_the_public_key_only(signer):
    jwks = signer.jwks()
    (key,) = jwks["keys"]
    assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key["kty"], key["crv"], key["kid"], key["alg"], key["use"]) == ("EC", "P-256", "test-receipts-1", "ES256", "sig")
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)  # no private member
    assert json.loads(RECEIPT_SIGNING_KEY)["d"] not in json.dumps(jwks)


def test_the_signer_refuses_a_public_or_a_non_p256_key_without_showing_it():
    private, public = new_key_pair(kid="k")
    with pytest.raises(ValueError, match="PRIVATE EC P-256"):
        ReceiptSigner(public, ISSUER)
    with pytest.raises(ValueError, match="no kid"):
        ReceiptSigner({k: v for k, v in private.items() if k != "kid"}, ISSUER)
    with pytest.raises(ValueError, match="not JSON") as refused:
        ReceiptSigner.from_settings(Settings(receipt_signing_key="{" + private["d"]))
    assert private["d"] not in str(refused.value)


def test_the_key_file_wins_and_the_key_is_a_required_secret(tmp_path):
    path = tmp_path / "receipt.jwk.json"
    path.write_text(json.dumps(new_key_pair(kid="from-the-file")[0]))
    settings = Settings(receipt_signing_key=RECEIPT_SIGNING_KEY, receipt_signing_key_file=str(path))
    assert ReceiptSigner.from_settings(settings).kid == "from-the-file"
    with pytest.raises(RuntimeError, match="missing secrets: .*BRB_RECEIPT_SIGNING_KEY"):
        Settings(pseudonym_key="p", encryption_keys="k1:" + "A" * 43 + "=", audit_chain_key="c").require_secrets()
    Settings(pseudonym_key="p", encryption_keys="k", audit_chain_key="c", receipt_signing_key_file=str(path)).require_secrets()


def test_the_demo_generates_a_receipt_key_into_an_existing_demo_secrets_file(tmp_path, monkeypatch):
    from gateway import demo

    monkeypatch.setattr(demo, "VAR", tmp_path)
    monkeypatch.setattr(demo, "SECRETS", tmp_path / "demo-secrets.json")
    old = {"BRB_PSEUDONYM_KEY": "p", "BRB_ENCRYPTION_KEYS": "k1:x", "BRB_AUDIT_CHAIN_KEY": "c", "BRB_SESSION_SECRET": "s" * 32}
    demo.SECRETS.write_text(json.dumps(old))
    values = demo.demo_secrets()
    assert {k: values[k] for k in old} == old  # what was there stays
    signer = ReceiptSigner(json.loads(values["BRB_RECEIPT_SIGNING_KEY"]), ISSUER)
    assert json.loads(demo.SECRETS.read_text())["BRB_RECEIPT_SIGNING_KEY"] == values["BRB_RECEIPT_SIGNING_KEY"]  # kept
    assert demo.demo_secrets()["BRB_RECEIPT_SIGNING_KEY"] == values["BRB_RECEIPT_SIGNING_KEY"]  # and not made again
    assert verify_receipt(signer.sign({"receipt": "test"}), signer.jwks())["receipt"] == "test"
    assert set(ADDED_LATER) <= set(values)
