"""The contract registry: (message type, version) -> model, validation with JSON-pointer errors,
and the section map that ``consent/`` uses to filter a payload without knowing the model.
Versions live side by side: a v2 model is registered next to its v1, and both stay accepted."""
from __future__ import annotations

import json

import copy
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.aftercare_report import AftercareReportV1
from contracts.common import SECTION_CATEGORY_KEY, Contract, MessageContract
from contracts.detention_notice import DetentionNoticeV1
from contracts.dr_plan import DrPlanV1, DrPlanV2
from contracts.information_request import InformationRequestV1
from contracts.information_response import InformationResponseV1
from contracts.probation_advice import ProbationAdviceV1, ProbationAdviceV2
from contracts.release_notice import ReleaseNoticeV1, ReleaseNoticeV2
from contracts.risk_information import RiskInformationV1, RiskInformationV2
from contracts.screening_result import ScreeningResultV1, ScreeningResultV2
from contracts.som_triage import SomTriageV1, SomTriageV2
from contracts.transfer_notice import TransferNoticeV1, TransferNoticeV2

MODELS: tuple[type[MessageContract], ...] = (
    DetentionNoticeV1,
    InformationRequestV1,
    InformationResponseV1,
    ScreeningResultV1,
    DrPlanV1,
    SomTriageV1,
    ProbationAdviceV1,
    RiskInformationV1,
    TransferNoticeV1,
    ReleaseNoticeV1,
    AftercareReportV1,
    ScreeningResultV2,
    DrPlanV2,
    ProbationAdviceV2,
    RiskInformationV2,
    TransferNoticeV2,
    ReleaseNoticeV2,
    SomTriageV2,
)
REGISTRY: dict[tuple[str, int], type[MessageContract]] = {(m.MESSAGE_TYPE, m.VERSION): m for m in MODELS}
MESSAGE_TYPES: tuple[str, ...] = tuple(dict.fromkeys(m.MESSAGE_TYPE for m in MODELS))


@dataclass(frozen=True)
class FieldProblem:
    pointer: str  # RFC 6901 JSON pointer into the payload
    message: str


class ContractError(ValueError):
    """A payload does not satisfy its contract; ``problems`` point at the offending fields."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = problems
        super().__init__("; ".join(f"{p.pointer or '/'}: {p.message}" for p in problems))


class UnknownContract(LookupError):
    pass


def model_for(message_type: str, version: int) -> type[MessageContract]:
    try:
        return REGISTRY[(message_type, version)]
    except KeyError:
        raise UnknownContract(f"no contract {message_type!r} version {version}") from None


def _pointer(loc: tuple[Any, ...]) -> str:
    # pydantic names union members in ``loc`` ("str-enum[...]"); they are not part of the document
    loc = tuple(part for part in loc if isinstance(part, int) or "[" not in str(part))
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def _message(error: dict[str, Any]) -> str:
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        msg = "unknown field (not in the contract)"
    return msg.replace(";", ",")


def validate_payload(message_type: str, version: int, payload: Any) -> MessageContract:
    """Validate ``payload`` against its contract, or raise ContractError with JSON pointers."""
    model = model_for(message_type, version)
    try:  # strictly as JSON, like the published schemas say: no 0 for a date, no "1" for an integer
        return model.model_validate_json(json.dumps(payload), strict=True)
    except ValidationError as exc:
        problems = [FieldProblem(_pointer(e["loc"]), _message(e)) for e in exc.errors(include_url=False)]
        raise ContractError(problems) from None


def _contract_class(annotation: Any) -> type[Contract] | None:
    if isinstance(annotation, type) and issubclass(annotation, Contract):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _contract_class(arg)
            if found:
                return found
    return None


def section_paths(model: type[BaseModel]) -> dict[tuple[str, ...], str]:
    """Every section of a model as (JSON path of aliases) -> data category, found through the
    ``x-data-category`` marker on fields, one level of nesting deep (dr-plan's ``sections``)."""
    found: dict[tuple[str, ...], str] = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if SECTION_CATEGORY_KEY in extra:
            found[(alias,)] = str(extra[SECTION_CATEGORY_KEY])
            continue
        nested = _contract_class(field.annotation)
        if nested is not None and nested is not model:
            for path, category in section_paths(nested).items():
                if len(path) == 1:
                    found[(alias, *path)] = category
    return found


def _carries_data(node: Any) -> bool:
    # an empty list or object carries no personal data: a v1 screening-result always has ``instruments: []``
    return node is not None and node != [] and node != {}


def section_pointers(message_type: str, version: int) -> dict[str, str]:
    """The contract's sections as JSON Pointer (RFC 6901) -> section name: what a signature salts
    (brb_client/proof.py)."""
    return {"".join("/" + p.replace("~", "~0").replace("/", "~1") for p in path): path[-1]
            for path in section_paths(model_for(message_type, version))}


def sections_present(message_type: str, version: int, payload: dict[str, Any]) -> dict[str, str]:
    """Sections present (non-null, non-empty) in a validated payload, as section name -> data category."""
    present: dict[str, str] = {}
    for path, category in section_paths(model_for(message_type, version)).items():
        node: Any = payload
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if _carries_data(node):
            present[path[-1]] = category
    return present


def redact(message_type: str, version: int, payload: dict[str, Any], withheld: set[str]) -> dict[str, Any]:
    """A copy of ``payload`` without the named sections."""
    out = copy.deepcopy(payload)
    for path in section_paths(model_for(message_type, version)):
        if path[-1] not in withheld:
            continue
        node: Any = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


def all_categories() -> set[str]:
    return {c for m in MODELS for c in section_paths(m).values()}
