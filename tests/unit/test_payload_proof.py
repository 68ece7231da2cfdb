"""brb_client/proof.py on its own: a connector signs a D&R-plan, the gateway withholds a section, the recipient
still verifies what it got, and learns nothing of what it did not get; every alteration is caught."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from brb_client.proof import (DIGEST_KEY, ProofInvalid, digest_form, payload_digest, section_digest,
                              section_pointers, sign_payload, signature_digest, verify_payload)
from contracts.registry import MODELS, section_paths
from tests.scenario import example

ROOT = Path(__file__).resolve().parents[2]
KEYS = {alg: key for alg, key in (
    ("ES256", ECKey.generate_key("P-256", parameters={"kid": "es"})),
    ("EdDSA", OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})),
    ("RS256", RSAKey.generate_key(2048, parameters={"kid": "rs"})),
)}
DR_PLAN_SECTIONS = section_pointers(json.loads((ROOT / "contracts/schemas/v1/dr-plan.json").read_text()))


def _public(alg: str) -> dict:
    return KEYS[alg].as_dict(private=False)


def _withhold(payload: dict, signed, pointer: str) -> tuple[dict, dict]:
    """What the gateway hands a recipient from whom ``pointer`` is withheld: the payload without it, and the proof."""
    name = pointer.rsplit("/", 1)[1]
    received = copy.deepcopy(payload)
    form = digest_form(payload, signed.salts)
    del received["sections"][name]
    proof = {"payloadDigest": signed.payload_digest, "signature": signed.jws,
             "salts": {p: s for p, s in signed.salts.items() if p != pointer},
             "withheld": {pointer: form["sections"][name][DIGEST_KEY]}}
    return received, proof


def test_the_schemas_name_the_same_sections_as_the_contracts():
    """A connector finds the sections in the published JSON Schema; the gateway in the contract models."""
    for model in MODELS:
        schema = json.loads((ROOT / f"contracts/schemas/v{model.VERSION}/{model.MESSAGE_TYPE}.json").read_text())
        assert sorted(section_pointers(schema)) == sorted("/" + "/".join(p) for p in section_paths(model)), model.__name__


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_a_signed_payload_verifies_whole_and_with_a_section_withheld(alg):
    payload = example("dr-plan")
    signed = sign_payload(payload, DR_PLAN_SECTIONS, KEYS[alg].as_dict(private=True))
    assert set(signed.salts) == {p for p in DR_PLAN_SECTIONS if payload["sections"].get(p.rsplit("/", 1)[1])}
    whole = verify_payload(payload, {"payloadDigest": signed.payload_digest, "signature": signed.jws,
                                     "salts": signed.salts}, _public(alg))
    assert whole.signed and whole.kid == KEYS[alg].kid and whole.payload_digest == signed.payload_digest

    received, proof = _withhold(payload, signed, "/sections/behaviour")
    assert "behaviour" not in received["sections"]
    assert verify_payload(received, proof, {"keys": [_public(a) for a in KEYS]}).payload_digest == signed.payload_digest


def test_every_alteration_is_refused():
    payload = example("dr-plan")
    signed = sign_payload(payload, DR_PLAN_SECTIONS, KEYS["ES256"].as_dict(private=True))
    proof = {"payloadDigest": signed.payload_digest, "signature": signed.jws, "salts": signed.salts}

    tampered = copy.deepcopy(payload)
    tampered["sections"]["housing"]["goals"][0]["description"] += "."
    with pytest.raises(ProofInvalid, match="digest"):
        verify_payload(tampered, proof, _public("ES256"))
    with pytest.raises(ProofInvalid, match="does not verify"):  # the digest recomputed too: the signature catches it
        verify_payload(tampered, {**proof, "payloadDigest": None}, _public("ES256"))
    other = ECKey.generate_key("P-256", parameters={"kid": "es"}).as_dict(private=False)
    with pytest.raises(ProofInvalid, match="does not verify"):
        verify_payload(payload, proof, other)
    with pytest.raises(ProofInvalid, match="no key 'es'"):
        verify_payload(payload, proof, {"keys": [_public("EdDSA")]})
    with pytest.raises(ProofInvalid, match="alg"):
        verify_payload(payload, proof, {**_public("RS256"), "kid": "es"})
    header, _, sig = signed.jws.partition("..")
    flipped = header + ".." + ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(ProofInvalid, match="does not verify"):
        verify_payload(payload, {**proof, "signature": flipped}, _public("ES256"))
    received, withheld = _withhold(payload, signed, "/sections/care")
    moved = {**withheld, "withheld": {"/sections/debts": withheld["withheld"]["/sections/care"]}}
    moved["salts"] = {p: s for p, s in moved["salts"].items() if p != "/sections/debts"}
    with pytest.raises(ProofInvalid):  # a digest cannot stand in for another section
        verify_payload(received, moved, _public("ES256"))


def test_a_withheld_sections_digest_reveals_nothing():
    """The same section, the same value, two salts: two unrelated digests; without the salt, a guess of the
    value (even the right one) does not give the digest."""
    value = example("dr-plan")["sections"]["behaviour"]
    first, second = section_digest("salt-one", "/sections/behaviour", value), section_digest("salt-two", "/sections/behaviour", value)
    assert first != second
    signed = sign_payload(example("dr-plan"), DR_PLAN_SECTIONS, KEYS["ES256"].as_dict(private=True))
    _, proof = _withhold(example("dr-plan"), signed, "/sections/behaviour")
    shown = proof["withheld"]["/sections/behaviour"]
    assert shown not in (section_digest("", "/sections/behaviour", value), payload_digest(value).split(":")[1])
    assert json.dumps(value)[:20] not in json.dumps(proof)
    assert len(signed.salts["/sections/behaviour"]) >= 22  # 128 bits


def test_the_signature_digest_names_one_signature():
    signed = sign_payload(example("dr-plan"), DR_PLAN_SECTIONS, KEYS["ES256"].as_dict(private=True))
    assert signature_digest(signed.jws).startswith("sha-256:") and signature_digest(signed.jws) != signature_digest(signed.jws + "x")
