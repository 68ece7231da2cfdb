"""Message contracts of the Berichtenbox Re-integratie.

Pure: pydantic models and their JSON Schemas, nothing about storage or HTTP. ``contracts.registry``
maps (message type, version) to a model; every model marks its *sections* with a data category so
``consent/`` can filter a payload without knowing the model.
"""
from contracts.registry import (  # noqa: F401
    ContractError,
    FieldProblem,
    REGISTRY,
    model_for,
    redact,
    sections_present,
    validate_payload,
)
