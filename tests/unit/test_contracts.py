"""Message contracts: examples, JSON pointers, committed schemas, v1 compatibility."""
import json
from pathlib import Path

import jsonschema
import pytest

from contracts import ContractError, validate_payload
from contracts.common import bsn_is_valid
from contracts.registry import MESSAGE_TYPES, MODELS, sections_present
from contracts.schema import field_types, generate, lock_file, render, schema_file

EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "examples"
VALID = sorted(EXAMPLES.glob("*/valid-*.json"))
INVALID = sorted(EXAMPLES.glob("*/invalid-*.json"))


def test_the_eleven_message_types_are_registered():
    assert set(MESSAGE_TYPES) == {
        "detention-notice", "information-request", "information-response", "screening-result", "dr-plan", "som-triage",
        "probation-advice", "risk-information", "transfer-notice", "release-notice", "aftercare-report",
    }


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_type_has_a_minimal_and_a_full_example_and_an_invalid_one(message_type):
    names = {p.name for p in (EXAMPLES / message_type).glob("*.json")}
    assert {"valid-minimal.json", "valid-full.json"} <= names
    assert any(n.startswith("invalid-") for n in names)


@pytest.mark.parametrize("path", VALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_example_validates_against_model_and_committed_schema(path):
    payload = json.loads(path.read_text())
    model = validate_payload(path.parent.name, 1, payload)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True)["subject"] == payload["subject"]
    jsonschema.validate(payload, json.loads(schema_file(path.parent.name, 1).read_text()))


@pytest.mark.parametrize("path", INVALID, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_invalid_example_fails_with_a_precise_json_pointer(path):
    doc = json.loads(path.read_text())
    with pytest.raises(ContractError) as info:
        validate_payload(path.parent.name, 1, doc["payload"])
    pointers = {p.pointer: p.message for p in info.value.problems}
    assert doc["expect"]["pointer"] in pointers, pointers
    assert doc["expect"]["messageContains"] in pointers[doc["expect"]["pointer"]]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.MESSAGE_TYPE)
def test_committed_schema_equals_the_generated_one(model):
    assert schema_file(model.MESSAGE_TYPE, model.VERSION).read_text() == render(model), "run `make schemas`"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.MESSAGE_TYPE)
def test_v1_never_loses_or_retypes_a_released_field(model):
    released = json.loads(lock_file(1).read_text())[model.MESSAGE_TYPE]
    current = field_types(generate(model))
    lost = sorted(set(released) - set(current))
    retyped = sorted(p for p in released if p in current and current[p] != released[p])
    assert not lost, f"fields removed from a released contract: {lost}"
    assert not retyped, f"fields retyped in a released contract: {[(p, released[p], current[p]) for p in retyped]}"


def test_compatibility_check_notices_a_removed_and_a_retyped_field():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    before = field_types(schema)
    after = field_types({"type": "object", "properties": {"b": {"type": "string"}}})
    assert set(before) - set(after) == {"/a"}
    assert before["/b"] != after["/b"]


BASE_PLAN = {"subject": {"bsn": "999990019"}, "planVersion": 1, "status": "draft",
             "prisonOin": "00000001001234567000", "sections": {"housing": {}}}


def _problems(message_type, payload):
    with pytest.raises(ContractError) as info:
        validate_payload(message_type, 1, payload)
    return {p.pointer: p.message for p in info.value.problems}


def test_wrong_bsn_check_digit_is_rejected_with_a_clear_message():
    problems = _problems("dr-plan", {**BASE_PLAN, "subject": {"bsn": "999990018"}})
    assert problems == {"/subject/bsn": "BSN fails the 11-test (check digit is wrong)"}


def test_unknown_section_is_rejected():
    problems = _problems("dr-plan", {**BASE_PLAN, "sections": {"family-tree": {}}})
    assert problems["/sections/family-tree"] == "unknown field (not in the contract)"


def test_action_owner_that_is_not_an_oin_is_rejected():
    plan = {**BASE_PLAN, "sections": {"debts": {"actions": [{"description": "Schuldenoverzicht", "ownerOin": "123"}]}}}
    assert _problems("dr-plan", plan) == {"/sections/debts/actions/0/ownerOin": "an OIN is exactly 20 digits"}


def test_release_date_before_arrival_date_is_rejected():
    notice = {"subject": {"skn": "12345678"}, "prisonOin": "00000001001234567000", "arrivalDate": "2026-11-02",
              "detentionKind": "sentence", "knownReleaseDate": "2026-11-01"}
    problems = _problems("detention-notice", notice)
    assert "lies before the arrival date" in problems["/knownReleaseDate"]


@pytest.mark.parametrize("bsn,valid", [("999990019", True), ("111222333", True), ("123456782", True),
                                       ("999990018", False), ("12345678", False), ("000000000", False)])
def test_bsn_eleven_test(bsn, valid):
    assert bsn_is_valid(bsn) is valid


def test_every_section_declares_its_data_category_in_the_schema():
    plan = json.loads((EXAMPLES / "dr-plan" / "valid-full.json").read_text())
    assert sections_present("dr-plan", 1, plan) == {
        "identity-document": "basic-conditions", "housing": "basic-conditions", "work-income": "basic-conditions",
        "debts": "basic-conditions", "care": "basic-conditions", "social-network": "social-network",
        "restorative-work": "restorative-work", "behaviour": "offence-related",
    }
    schema = json.loads(schema_file("risk-information", 1).read_text())
    assert schema["properties"]["detail"]["x-data-category"] == "risk-detail"
    assert schema["properties"]["summary"]["x-data-category"] == "risk-summary"


def test_contracts_and_consent_import_nothing_from_the_gateway():
    root = Path(__file__).resolve().parents[2]
    for package in ("contracts", "consent"):
        for source in (root / package).glob("*.py"):
            text = source.read_text()
            assert "import gateway" not in text and "from gateway" not in text, source
