"""Consents: record, list by subject pseudonym, withdraw."""
from __future__ import annotations

from fastapi import APIRouter

from contracts.parties import Scope
from gateway import consents
from gateway.api.common import Svc, caller_with
from gateway.api.params import ConsentId, SubjectParam
from gateway.openapi import problems

router = APIRouter(prefix="/consents", tags=["consents"])
Recorder = caller_with(Scope.CONSENTS_WRITE)
Viewer = caller_with(Scope.CONSENTS_READ, Scope.CONSENTS_WRITE)


@router.post("", status_code=201, summary="Record a detainee's consent (identifiers in the body only)",
             responses=problems("forbidden"))
async def record_consent(body: consents.ConsentRequest, caller: Recorder, svc: Svc) -> consents.ConsentView:
    """Record a detainee's (or, for children, the other parent's) consent: categories, recipient organisations or kinds, purposes, validity and evidence. Prisons and probation only. Identifiers go in the body, never in a URL."""
    return await consents.record_consent(svc, caller, body)


@router.get("", summary="Consents about a subject that concern you")
async def list_consents(
    subject_id: SubjectParam, caller: Viewer, svc: Svc,
) -> consents.ConsentList:
    """Consents about a subject pseudonym that concern your organisation."""
    return await consents.list_consents(svc, caller, subject_id)


@router.post("/{consent_id}/withdrawal", status_code=201, summary="Withdraw a consent", responses=problems("forbidden", "conflict"))
async def withdraw_consent(consent_id: ConsentId, body: consents.WithdrawalRequest, caller: Recorder, svc: Svc) -> consents.ConsentView:
    """Withdraw a consent. The sections it opened are hidden again, also in messages sent before, and `consent.withdrawn` tells the parties to delete local copies."""
    return await consents.withdraw_consent(svc, caller, consent_id, body)
