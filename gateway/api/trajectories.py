"""Trajectories and their deadlines: the chain's process norms per stay (gateway/trajectory)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, caller_in_transaction
from gateway.api.params import OIN_PATTERN, SUBJECT_PATTERN, Cursor, SubjectFilter
from gateway.openapi import problems
from gateway.schemas import Day
from gateway.statuses import DeadlineState
from gateway.trajectory import queries
from gateway.trajectory.queries import DeadlineFilter, DeadlinePage, DeadlineStats, NormId, TrajectoryView

router = APIRouter(tags=["trajectories"])
# the parties of a trajectory read it with their exchange token; auditors with theirs. Each look is audited in
# its own unit of work, which records the token's jti too
Viewer = caller_in_transaction(Scope.MESSAGES_READ, Scope.AUDIT_READ, Scope.AUDIT_READ_ALL)
SubjectPath = Annotated[str, Path(pattern=SUBJECT_PATTERN, description="subject pseudonym, never a BSN")]


async def deadline_filter(
    status: Annotated[DeadlineState | None, Query(description="open, overdue, met, met-late or not-applicable")] = None,
    norm: Annotated[NormId | None, Query(description="one of the norms (GET /trajectories/{subject_id} names them)")] = None,
    organisation: Annotated[str | None, Query(pattern=OIN_PATTERN, description="the responsible organisation (OIN)")] = None,
    subject_id: SubjectFilter = None,
    due_from: Annotated[Day | None, Query(alias="dueFrom", description="due on or after this day (YYYY-MM-DD)")] = None,
    due_to: Annotated[Day | None, Query(alias="dueTo", description="due on or before this day (YYYY-MM-DD)")] = None,
) -> DeadlineFilter:
    return DeadlineFilter(status, norm, organisation, subject_id, due_from, due_to)


DeadlineQuery = Annotated[DeadlineFilter, Depends(deadline_filter)]


@router.get("/trajectories/{subject_id}", summary="A subject's stay, its deadlines and who leads", name="get_trajectory")
async def get_trajectory(subject_id: SubjectPath, caller: Viewer, svc: Svc) -> TrajectoryView:
    """The subject's current stay: arrival, prison, expected release; every process norm with its due day, when and by which message it was met (and how the recipients acknowledged it); who leads now and after release. For the parties of the stay and for auditors; 404 for anyone else."""
    return await queries.trajectory(svc, caller, subject_id)


@router.get("/deadlines", summary="Deadlines you may see, by due day", name="list_deadlines",
            responses=problems("invalid-request"))
async def list_deadlines(f: DeadlineQuery, size: PageSize, caller: Viewer, svc: Svc, cursor: Cursor = None) -> DeadlinePage:
    """Deadlines of the trajectories you are a party to (or responsible for), oldest due day first; `status=overdue` lists what was missed. Filter by `status`, `norm`, responsible `organisation`, `subjectId`, `dueFrom`/`dueTo`; page with `cursor`."""
    return await queries.deadlines(svc, caller, f, cursor, size)


@router.get("/deadlines/stats", summary="Share of deadlines met in time, per organisation and norm", name="deadline_stats",
            responses=problems("invalid-request"))
async def deadline_stats(f: DeadlineQuery, caller: Viewer, svc: Svc) -> DeadlineStats:
    """Of the deadlines due in the period (`dueFrom`/`dueTo`) that you may see: per responsible organisation and norm, how many were met on time, met late or are overdue, the share met on time and the average days late."""
    return await queries.stats(svc, caller, f)
