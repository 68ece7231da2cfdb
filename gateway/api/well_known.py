"""``/.well-known/jwks.json``: the public key(s) of the gateway's signed receipts (gateway/receipts.py), for
anyone who holds a receipt, without a token. Outside /api/v1 and the OpenAPI document, like the health routes;
docs/signatures.md describes it."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.receipts import JWKS_PATH

router = APIRouter(include_in_schema=False)
JWK_SET = "application/jwk-set+json"  # RFC 7517 section 8.5


@router.get(JWKS_PATH)
async def jwks(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.services.receipts.jwks(), media_type=JWK_SET,
                        headers={"Cache-Control": "public, max-age=300"})
