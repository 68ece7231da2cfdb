"""A payload's proof: the sender's signature, which still verifies after the gateway withheld sections.

The *sections* of a payload are the parts the gateway may withhold from a recipient (marked
``x-data-category`` in the contract's JSON Schema; ``section_pointers`` finds them). Each section present is
replaced by a salted digest of itself, as SD-JWT (RFC 9901) does for claims::

    {"_sd": base64url(SHA-256(JCS([salt, pointer, value])))}

which gives the payload's *digest form*. The sender signs the digest form's canonical JSON (RFC 8785 JCS) as
a JWS with a detached payload (RFC 7515 appendix F): ``<protected header>..<signature>``, header ``alg``
(ES256, RS256 or EdDSA), ``kid`` (one of the sender's keys registered with the gateway) and ``typ``
``brb-payload+jws``. The payload digest, ``sha-256:`` + base64url(SHA-256(JCS(digest form))), names the
content in receipts and in the audit log without holding it.

A recipient gets the payload without the sections withheld from it, the salts of the sections it got and the
digests of those it did not. It recomputes the digests it can, takes the others as given, rebuilds the same
digest form and checks the signature (``verify_payload``). A withheld section's digest tells it nothing: it
is a hash over a 128-bit random salt it never sees.

The gateway and connectors use this one module, so they cannot disagree on the format. It imports nothing of
the gateway."""
from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import warnings
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import rfc8785
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from rfc8785 import CanonicalizationError  # what ``canonical`` raises for what JCS cannot hold (an integer beyond 2^53)

DIGEST_KEY = "_sd"
JWS_TYPE = "brb-payload+jws"
ALGORITHMS = ("ES256", "RS256", "EdDSA")
SALT_BYTES = 16
SECTION_MARKER = "x-data-category"


class ProofInvalid(ValueError):
    """The payload, its proof or its signature do not fit together; the message says where."""


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON."""
    return rfc8785.dumps(value)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def digest(data: bytes) -> str:
    """``sha-256:`` + base64url(SHA-256(data)): the payload digest, and the signature digest of a JWS."""
    return "sha-256:" + _b64url(hashlib.sha256(data).digest())


def new_salt() -> str:
    return _b64url(secrets.token_bytes(SALT_BYTES))


def section_digest(salt: str, pointer: str, value: Any) -> str:
    """A section's salted digest; the pointer is in it, so a digest cannot be moved to another section."""
    return _b64url(hashlib.sha256(canonical([salt, pointer, value])).digest())


def pointer_of(path: Iterable[str]) -> str:
    """The RFC 6901 JSON Pointer of a path of member names."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path)


def _path(pointer: str) -> list[str]:
    if not pointer.startswith("/"):
        raise ProofInvalid(f"{pointer!r} is not a JSON Pointer (RFC 6901)")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _parent(document: dict, pointer: str) -> tuple[dict, str]:
    *parents, name = _path(pointer)
    node: Any = document
    for p in parents:
        node = node.get(p) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise ProofInvalid(f"{pointer}: no object holds this section")
    return node, name


def digest_form(payload: Mapping, salts: Mapping[str, str], withheld: Mapping[str, str] | None = None) -> dict:
    """The payload with each salted section replaced by its digest, and each withheld section's digest put
    back where it was. A salt for a section that is not there, or a withheld digest where a section is, is an
    error: the form would not be the one signed."""
    form = copy.deepcopy(dict(payload))
    for pointer, salt in salts.items():
        parent, name = _parent(form, pointer)
        if parent.get(name) is None:
            raise ProofInvalid(f"{pointer}: a salt is given for a section that is not in the payload")
        parent[name] = {DIGEST_KEY: section_digest(salt, pointer, parent[name])}
    for pointer, section in (withheld or {}).items():
        parent, name = _parent(form, pointer)
        if name in parent:
            raise ProofInvalid(f"{pointer}: a digest is given for a section that is in the payload")
        parent[name] = {DIGEST_KEY: section}
    return form


def digest_at(form: Mapping, pointer: str) -> str:
    """The salted digest a digest form holds for the section at ``pointer``."""
    parent, name = _parent(dict(form), pointer)
    return parent[name][DIGEST_KEY]


def payload_digest(form: Mapping) -> str:
    return digest(canonical(form))


def signature_digest(signature: str) -> str:
    return digest(signature.encode())


@contextmanager
def _quiet():
    """joserfc warns that RFC 9864 deprecates the name EdDSA; it is the name registered keys carry here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        yield


@dataclass(frozen=True)
class Signed:
    """What a sender puts in its send request: ``{"signature": {"jws": ..., "salts": ...}}``."""

    jws: str
    salts: dict[str, str]
    payload_digest: str

    def as_request(self) -> dict:
        return {"jws": self.jws, "salts": dict(self.salts)}


def present_sections(payload: Mapping, pointers: Iterable[str]) -> list[str]:
    """The pointers of sections that carry data in this payload (not missing, null, [] or {})."""
    present = []
    for pointer in pointers:
        try:
            parent, name = _parent(dict(payload), pointer)
        except ProofInvalid:
            continue
        if parent.get(name) not in (None, [], {}):
            present.append(pointer)
    return present


def sign_payload(payload: Mapping, section_pointers: Iterable[str], private_jwk: Mapping, *,
                 salts: Mapping[str, str] | None = None) -> Signed:
    """Sign ``payload`` with a private JWK (its ``kid`` registered with the gateway): a fresh salt per
    section present among ``section_pointers`` (``section_pointers(schema)`` gives them for a contract)."""
    chosen = dict(salts) if salts is not None else {p: new_salt() for p in present_sections(payload, section_pointers)}
    form = digest_form(payload, chosen)
    key = JWKRegistry.import_key(dict(private_jwk))
    alg = algorithm_of(private_jwk)
    header = {"alg": alg, "kid": private_jwk["kid"], "typ": JWS_TYPE}
    with _quiet():
        compact = jws.serialize_compact(header, canonical(form), key, algorithms=[alg])
    return Signed(jws.detach_content(compact), chosen, payload_digest(form))


def algorithm_of(jwk: Mapping) -> str:
    """The one signature algorithm a key is used with here (the gateway's registry too): never the header's choice."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "RSA":
        return "RS256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    raise ProofInvalid(f"no signature algorithm for a {kty} {crv or ''} key: use EC P-256, RSA or Ed25519")


def signature_header(signature: str) -> dict:
    """The protected header of a detached JWS, unverified (to find its ``kid``)."""
    if not isinstance(signature, str) or signature.count(".") != 2 or signature.split(".")[1] != "":
        raise ProofInvalid("the signature is not a compact JWS with a detached payload (<header>..<signature>)")
    try:
        with _quiet():
            return dict(jws.extract_compact(signature.encode()).protected)
    except (JoseError, ValueError) as exc:
        raise ProofInvalid(f"the signature's header cannot be read: {exc}") from None


def verify_signature(signature: str, form: Mapping, public_jwk: Mapping) -> dict:
    """Check a detached JWS over a digest form with the signer's public JWK; its protected header, or
    ``ProofInvalid``. The algorithm is the key's, never the header's alone; ``typ`` must be ours."""
    header = signature_header(signature)
    alg = algorithm_of(public_jwk)
    if header.get("alg") != alg:
        raise ProofInvalid(f"the signature says alg {header.get('alg')!r}; key {public_jwk.get('kid')!r} is an {alg} key")
    if header.get("kid") != public_jwk.get("kid"):
        raise ProofInvalid(f"the signature's kid {header.get('kid')!r} is not key {public_jwk.get('kid')!r}")
    if header.get("typ") != JWS_TYPE:
        raise ProofInvalid(f"the signature's typ must be {JWS_TYPE!r}")
    public = {k: v for k, v in public_jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    try:
        with _quiet():
            jws.deserialize_compact(signature, JWKRegistry.import_key(public), payload=canonical(form), algorithms=[alg])
    except JoseError:
        raise ProofInvalid("the signature does not verify: the payload or its proof was altered, or another key signed it") from None
    except ValueError as exc:
        raise ProofInvalid(f"the signature cannot be checked: {exc}") from None
    return header


@dataclass(frozen=True)
class Verified:
    """A received payload found authentic: who signed it (kid) and the digest that names its content."""

    kid: str | None
    payload_digest: str
    signed: bool


def verify_payload(payload: Mapping, proof: Mapping, keys: Mapping) -> Verified:
    """Is ``payload`` (as received, withheld sections absent) what its sender signed, unaltered?

    ``proof`` is the message's ``proof`` member as the gateway hands it out (``payloadDigest``, ``signature``,
    ``salts``, ``withheld``); ``keys`` the sender's public JWK or a JWK Set of its keys (GET
    /organisations/{oin}/jwks). Raises ``ProofInvalid`` saying what does not fit. A proof without a signature
    (the sender did not sign: allowed while BRB_REQUIRE_SIGNED_MESSAGES is off) only checks the digest."""
    form = digest_form(payload, proof.get("salts") or {}, proof.get("withheld") or {})
    found = payload_digest(form)
    if proof.get("payloadDigest") is not None and proof["payloadDigest"] != found:
        raise ProofInvalid(f"the payload's digest is {found}, the proof says {proof['payloadDigest']}")
    signature = proof.get("signature")
    if not signature:
        return Verified(None, found, False)
    kid = signature_header(signature).get("kid")
    verify_signature(signature, form, _key_for(keys, kid))
    return Verified(kid, found, True)


def _key_for(keys: Mapping, kid: str | None) -> Mapping:
    if "keys" not in keys:
        return keys
    for key in keys["keys"]:
        if key.get("kid") == kid:
            return key
    raise ProofInvalid(f"no key {kid!r} in the key set")


def section_pointers(schema: Mapping) -> list[str]:
    """The pointers of a contract's sections, from its JSON Schema (contracts/schemas/v<n>/<type>.json):
    the properties marked ``x-data-category``, at the top or one object deep (dr-plan's ``sections``)."""
    defs = schema.get("$defs", {})

    def resolved(node: Mapping) -> Mapping:
        for option in [node, *node.get("anyOf", [])]:
            ref = option.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return defs.get(ref.split("/")[-1], {})
        return node

    found = []
    for name, prop in schema.get("properties", {}).items():
        if SECTION_MARKER in prop:
            found.append(pointer_of([name]))
            continue
        for inner, inner_prop in resolved(prop).get("properties", {}).items():
            if SECTION_MARKER in inner_prop:
                found.append(pointer_of([name, inner]))
    return found


__all__ = ["ALGORITHMS", "DIGEST_KEY", "JWS_TYPE", "CanonicalizationError", "ProofInvalid", "Signed", "Verified",
           "algorithm_of", "canonical", "digest", "digest_at", "digest_form", "new_salt", "payload_digest", "pointer_of",
           "present_sections", "section_digest", "section_pointers", "sign_payload", "signature_digest", "signature_header",
           "verify_payload", "verify_signature"]
