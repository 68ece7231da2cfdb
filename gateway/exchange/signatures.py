"""The payload's proof in the exchange (the format is brb_client/proof.py, shared with connectors).

At the send, ``for_send`` checks the sender's detached JWS over the payload's digest form against the
sender's registered key, before anything is stored; an unsigned payload (allowed while
``BRB_REQUIRE_SIGNED_MESSAGES`` is off) gets salts made here, so every message has a payload digest. The salts
are sealed like the payload; the digest and the signature are kept beside it.

At a read, ``opened`` checks the stored payload against its stored digest and, when signed, the sender's
signature (with the key it signed with, even if revoked since): a payload altered in the database after
storage — even one re-sealed with the gateway's own keys — is detected and not handed out. ``proof_for``
gives the recipient the salts of the sections it got and the digests of those withheld from it."""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from brb_client.proof import (ALGORITHMS, CanonicalizationError, ProofInvalid, canonical, digest_at, digest_form, new_salt,
                              payload_digest, pointer_of, signature_digest, signature_header, verify_signature)
from contracts.registry import section_pointers
from gateway.auth.keycache import KeyEntry, key_cache
from gateway.auth.tokens import Caller, registered_key
from gateway.db.models import PAYLOAD_SALTS, Message, OrganisationKey
from gateway.problems import Problem, field_detail
from gateway.schemas import PayloadProof, SendMessageRequest
from gateway.services import Services

log = logging.getLogger("brb.integrity")


@dataclass(frozen=True)
class SendProof:
    """What the send stores of the proof, and what its receipt and audit record name."""

    salts: dict[str, str]
    payload_digest: str
    signature: str | None

    @property
    def signature_digest(self) -> str | None:
        return signature_digest(self.signature) if self.signature else None

    def columns(self, services: Services, message_id: str) -> dict:
        return dict(payload_digest=self.payload_digest, signature=self.signature,
                    **PAYLOAD_SALTS.sealed_values(services.keyring, json.dumps(self.salts), aad=_salts_aad(message_id)))


def _present(message_type: str, version: int, sections: dict[str, str]) -> list[str]:
    return [pointer for pointer, name in section_pointers(message_type, version).items() if name in sections]


async def for_send(services: Services, caller: Caller, body: SendMessageRequest, payload: dict,
                   sections: dict[str, str]) -> SendProof:
    """The proof of a payload about to be sent (``payload``: its normal form, as it will be stored;
    ``sections``: those present), or ``invalid-signature`` / ``signature-required``."""
    present = _present(body.type, body.version, sections)
    if body.signature is None:
        if services.settings.require_signed_messages:
            raise Problem("signature-required", "this gateway accepts signed messages only: sign the payload "
                                                "(docs/signatures.md) and send it as signature {jws, salts}")
        salts = {pointer: new_salt() for pointer in present}
        with _representable():
            return SendProof(salts, payload_digest(digest_form(payload, salts)), None)

    salts = dict(body.signature.salts)
    missing, extra = sorted(set(present) - set(salts)), sorted(set(salts) - set(present))
    if missing or extra:
        raise _refused(("no salt for the section(s) present: " + ", ".join(missing)) if missing else
                       ("a salt for what is no section present in this payload: " + ", ".join(extra)))
    with _representable():
        normal = canonical(body.payload) == canonical(payload)
    if not normal:
        raise _refused("sign the payload in its normal form, as its contract gives it (camelCase member names, no "
                       f"null members, text without surrounding white space): it differs at {_first_difference(body.payload, payload)}")
    try:
        header = signature_header(body.signature.jws)
    except ProofInvalid as exc:
        raise _refused(str(exc)) from None
    kid = header.get("kid")
    if header.get("alg") not in ALGORITHMS:
        raise _refused(f"algorithm {header.get('alg')!r} is not accepted; use one of {', '.join(ALGORITHMS)}")
    if not isinstance(kid, str) or not kid:
        raise _refused("the signature's header has no kid")
    key = await _signing_key(services, caller.oin, kid)
    if key is None:
        raise _refused(f"kid {kid!r} is not a registered key of your organisation")
    if key.revoked_at is not None:
        raise _refused(f"key {kid!r} was revoked; sign with an active key")
    form = digest_form(payload, salts)
    try:
        verify_signature(body.signature.jws, form, key.jwk)
    except ProofInvalid as exc:
        raise _refused(str(exc)) from None
    return SendProof(salts, payload_digest(form), body.signature.jws)


@contextmanager
def _representable() -> Iterator[None]:
    """A payload canonical JSON cannot hold (an integer beyond 2^53) is the sender's error, not the gateway's."""
    try:
        yield
    except CanonicalizationError as exc:
        raise Problem("validation-failed", field_detail([("/payload", f"not representable as canonical JSON (RFC 8785): {exc}")])) from None


def _refused(why: str) -> Problem:
    return Problem("invalid-signature", why)


def _first_difference(sent: Any, normal: Any, at: str = "") -> str:
    """The JSON Pointer of the first place where the sent payload and its normal form differ."""
    if isinstance(sent, dict) and isinstance(normal, dict):
        for name in sorted(set(sent) | set(normal)):
            if sent.get(name, ...) != normal.get(name, ...):
                return _first_difference(sent.get(name), normal.get(name), f"{at}/{pointer_of([name])[1:]}")
    if isinstance(sent, list) and isinstance(normal, list) and len(sent) == len(normal):
        for i, (a, b) in enumerate(zip(sent, normal)):
            if a != b:
                return _first_difference(a, b, f"{at}/{i}")
    return at or "/"


async def _signing_key(services: Services, oin: str, kid: str) -> KeyEntry | None:
    """The registered key (revoked ones too), through the token check's key cache."""
    try:
        return await registered_key(services, oin, kid)
    except Problem:  # no such kid (or no longer an active organisation: then it sends nothing anyway)
        return None


async def _signed_with(services: Services, conn, oin: str, kid: str) -> dict | None:
    """The sender's key a stored message was signed with (revoked since or not): from the key cache, else read on
    the read's own connection (``conn``, inside its unit of work)."""
    cached = key_cache(services).get(oin, kid)
    if cached is not None:
        return cached.jwk
    return (await conn.execute(_KEY_JWK, {"oin": oin, "kid": kid})).scalar()


_KEY_JWK = select(OrganisationKey.jwk).where(OrganisationKey.oin == bindparam("oin"), OrganisationKey.kid == bindparam("kid"))


def _salts_aad(message_id: str) -> bytes:
    return message_id.encode() + b"|salts"


def stored_salts(services: Services, message: Message) -> dict[str, str]:
    text = PAYLOAD_SALTS.open_text(services.keyring, message, aad=_salts_aad(message.id))
    return json.loads(text) if text else {}


@dataclass(frozen=True)
class Opened:
    """A stored payload found to be what was sent: its salts and its digest form."""

    salts: dict[str, str]
    form: dict | None  # None: a message stored before proofs (migration 0012)


async def opened(services: Services, conn, message: Message, payload: dict) -> Opened:
    """The stored payload's proof, once the payload is found to be what was sent (``integrity-failed``
    otherwise). A message stored before proofs (no digest) passes as it is."""
    if message.payload_digest is None:
        return Opened({}, None)
    salts = stored_salts(services, message)
    form = digest_form(payload, salts)
    if payload_digest(form) != message.payload_digest:
        raise _altered(message, "its digest")
    if message.signature:
        kid = signature_header(message.signature).get("kid")
        try:
            jwk = await _signed_with(services, conn, message.sender_oin, kid)
            if jwk is None:
                raise ProofInvalid(f"the sender's key {kid!r} is not in the registry")
            verify_signature(message.signature, form, jwk)
        except ProofInvalid:
            raise _altered(message, "the sender's signature") from None
    return Opened(salts, form)


def _altered(message: Message, what: str) -> Problem:
    log.error("integrity.payload-altered", extra={"message_id": message.id, "check": what})
    return Problem("integrity-failed", f"the stored payload of this message no longer matches {what}: it was altered "
                                       "after it was sent, and is not handed out")


def proof_for(message: Message, opened: Opened, withheld_sections: set[str] = frozenset()) -> PayloadProof | None:
    """What a reader gets to verify its copy: the salts of the sections it got, the digests of the others."""
    if opened.form is None:
        return None
    pointers = section_pointers(message.type, message.version)
    withheld = {p for p in opened.salts if pointers.get(p) in withheld_sections}
    return PayloadProof(
        payload_digest=message.payload_digest, signature=message.signature,
        salts={p: s for p, s in opened.salts.items() if p not in withheld},
        withheld={p: digest_at(opened.form, p) for p in sorted(withheld)},
    )
