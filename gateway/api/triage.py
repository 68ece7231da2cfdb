"""The SOM triage: the worklist of the prison or probation office and one subject's triage (gateway/triage)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, caller_in_transaction
from gateway.api.params import SUBJECT_PATTERN, Cursor
from gateway.openapi import problems
from gateway.statuses import TriageOutcome, TriageState
from gateway.triage import queries
from gateway.triage.queries import CriterionId, TriageFilter, TriagePage, TriageView

router = APIRouter(tags=["triage"])
# the prison and probation read it with their exchange token; each look is audited in its own unit of work
Party = caller_in_transaction(Scope.MESSAGES_READ)
SubjectPath = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="subject pseudonym, never a BSN")]


async def triage_filter(
    outcome: Annotated[TriageOutcome | None, Query(description="no-priority, priority, postponed or rest-group")] = None,
    status: Annotated[TriageState | None, Query(description="open or decided")] = None,
    criterion: Annotated[CriterionId | None, Query(description="one of the SOM criteria (gateway/triage/som.yaml)")] = None,
) -> TriageFilter:
    return TriageFilter(outcome, status, criterion)


@router.get("/triage", summary="The SOM triage of every current detainee of your prison or probation office",
            name="list_triage", responses=problems("forbidden"))
async def list_triage(f: Annotated[TriageFilter, Depends(triage_filter)], size: PageSize, caller: Party, svc: Svc,
                      cursor: Cursor = None) -> TriagePage:
    """Every current detainee (stay not ended, not released before today) of the stays your prison or probation organisation is a party to: the first pass's outcome (no-priority, priority, postponed, rest-group), the criterion that decided it and since when, and the joint decision once made. Filter by `outcome`, `status`, `criterion`; page with `cursor`. For a prison or probation organisation only: 403 for any other."""
    return await queries.worklist(svc, caller, f, cursor, size)


@router.get("/triage/{subject_id}", summary="A subject's SOM triage, explained", name="get_triage",
            responses=problems("forbidden", "not-found"))
async def get_triage(subject_id: SubjectPath, caller: Party, svc: Svc) -> TriageView:
    """The triage of the subject's latest stay you are a party to: outcome, criterion and its explanation, the facts that fired it with the messages they came from, the rest group's profile and tiering, the casemanager's override, the joint decision with its justification, and every change. 404 when there is none you are a party to; 403 for an organisation other than a prison or probation."""
    return await queries.triage(svc, caller, subject_id)
