"""Message contracts: examples, JSON pointers, committed schemas, compatibility of released versions."""
import json
from pathlib import Path

import jsonschema
import pytest

from contracts import ContractError, validate_payload
from contracts.common import OffenceKind, Risk18b, bsn_is_valid
from contracts.registry import MESSAGE_TYPES, MODELS, REGISTRY, sections_present
from contracts.schema import field_types, generate, lock_file, render, schema_file

EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "examples"


def example_dir(message_type: str, version: int) -> Path:
    """v1 examples sit at the top of ``examples/<type>/``, later versions in ``examples/<type>/v<N>/``."""
    return EXAMPLES / message_type if version == 1 else EXAMPLES / message_type / f"v{version}"


def _examples(prefix: str) -> list[tuple[str, int, Path]]:
    return [(t, v, p) for (t, v) in sorted(REGISTRY) for p in sorted(example_dir(t, v).glob(f"{prefix}-*.json"))]


VALID = _examples("valid")
INVALID = _examples("invalid")
_example_id = lambda case: f"{case[0]}/v{case[1]}/{case[2].name}"  # noqa: E731


def test_the_eleven_message_types_are_registered():
    assert set(MESSAGE_TYPES) == {
        "detention-notice", "information-request", "information-response", "screening-result", "dr-plan", "som-triage",
        "probation-advice", "risk-information", "transfer-notice", "release-notice", "aftercare-report",
    }


def test_seven_types_have_a_version_2():
    assert {t for (t, v) in REGISTRY if v == 2} == {
        "screening-result", "dr-plan", "probation-advice", "risk-information", "transfer-notice", "release-notice",
        "som-triage",
    }
    assert all((t, 1) in REGISTRY for t in MESSAGE_TYPES), "v1 stays accepted"


@pytest.mark.parametrize("message_type,version", sorted(REGISTRY), ids=lambda x: str(x))
def test_every_version_has_a_minimal_and_a_full_example_and_an_invalid_one(message_type, version):
    names = {p.name for p in example_dir(message_type, version).glob("*.json")}
    assert {"valid-minimal.json", "valid-full.json"} <= names
    assert any(n.startswith("invalid-") for n in names)


@pytest.mark.parametrize("case", VALID, ids=_example_id)
def test_valid_example_validates_against_model_and_committed_schema(case):
    message_type, version, path = case
    payload = json.loads(path.read_text())
    model = validate_payload(message_type, version, payload)
    assert model.model_dump(mode="json", by_alias=True, exclude_none=True)["subject"] == payload["subject"]
    jsonschema.validate(payload, json.loads(schema_file(message_type, version).read_text()))


@pytest.mark.parametrize("case", INVALID, ids=_example_id)
def test_invalid_example_fails_with_a_precise_json_pointer(case):
    message_type, version, path = case
    doc = json.loads(path.read_text())
    with pytest.raises(ContractError) as info:
        validate_payload(message_type, version, doc["payload"])
    pointers = {p.pointer: p.message for p in info.value.problems}
    assert doc["expect"]["pointer"] in pointers, pointers
    assert doc["expect"]["messageContains"] in pointers[doc["expect"]["pointer"]]


_model_id = lambda m: f"{m.MESSAGE_TYPE}/v{m.VERSION}"  # noqa: E731


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_committed_schema_equals_the_generated_one(model):
    assert schema_file(model.MESSAGE_TYPE, model.VERSION).read_text() == render(model), "run `make schemas`"


@pytest.mark.parametrize("model", MODELS, ids=_model_id)
def test_a_released_version_never_loses_or_retypes_a_field(model):
    lock = json.loads(lock_file(model.VERSION).read_text())
    assert model.MESSAGE_TYPE in lock, f"run `python -m contracts.schema --lock {model.VERSION}`"
    released = lock[model.MESSAGE_TYPE]
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


def test_writing_a_lock_only_adds_so_it_cannot_hide_a_removed_or_retyped_field(tmp_path, monkeypatch):
    import contracts.schema as schema

    monkeypatch.setattr(schema, "SCHEMA_DIR", tmp_path)
    (tmp_path / "v2").mkdir()
    schema.lock_file(2).write_text(json.dumps({"dr-plan": {"/gone": "string", "/subject": "string"}}))
    lock = json.loads(schema.write_lock(2).read_text())
    assert lock["dr-plan"]["/gone"] == "string" and lock["dr-plan"]["/subject"] == "string"
    assert lock["dr-plan"]["/sections/children-family"] == "null|object:PlanSection"
    assert set(lock) == {t for (t, v) in REGISTRY if v == 2}


BASE_PLAN = {"subject": {"bsn": "999990019"}, "planVersion": 1, "status": "draft",
             "prisonOin": "00000001001234567000", "sections": {"housing": {}}}


def _problems(message_type, payload, version=1):
    with pytest.raises(ContractError) as info:
        validate_payload(message_type, version, payload)
    return {p.pointer: p.message for p in info.value.problems}


def test_wrong_bsn_check_digit_is_rejected_with_a_clear_message():
    problems = _problems("dr-plan", {**BASE_PLAN, "subject": {"bsn": "999990018"}})
    assert problems == {"/subject/bsn": "BSN fails the 11-test (check digit is wrong)"}


@pytest.mark.parametrize(("field", "value"), [("reviewDate", 0), ("reviewDate", 20261101), ("planVersion", "1"), ("planVersion", 1.5),
                                              ("planVersion", True)])
def test_a_value_of_another_json_type_is_refused_not_coerced(field, value):
    """As the published schemas say: a date is a string, an integer a number (no 0 for 1970-01-01)."""
    assert set(_problems("dr-plan", {**BASE_PLAN, field: value})) == {f"/{field}"}


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
        "debts": "basic-conditions", "care": "basic-conditions", "social-network": "children-family",
        "restorative-work": "restorative-work", "behaviour": "offence-related",
    }
    schema = json.loads(schema_file("risk-information", 1).read_text())
    assert schema["properties"]["detail"]["x-data-category"] == "risk-detail"
    assert schema["properties"]["summary"]["x-data-category"] == "risk-summary"
    screening = json.loads(schema_file("screening-result", 1).read_text())["properties"]
    assert screening["socialNetwork"]["x-data-category"] == "children-family"
    assert screening["instruments"]["x-data-category"] == "health"


def test_v2_dr_plan_splits_family_and_health_into_sections_of_their_own():
    plan = json.loads((example_dir("dr-plan", 2) / "valid-full.json").read_text())
    assert sections_present("dr-plan", 2, plan) == {
        "identity-document": "basic-conditions", "housing": "basic-conditions", "work-income": "basic-conditions",
        "debts": "basic-conditions", "care": "basic-conditions", "social-network": "social-network",
        "children-family": "children-family", "health": "health",
        "restorative-work": "restorative-work", "behaviour": "offence-related",
    }


def test_v2_screening_result_and_probation_advice_sections():
    screening = json.loads((example_dir("screening-result", 2) / "valid-full.json").read_text())
    assert sections_present("screening-result", 2, screening) == {
        "instruments": "health", "basicConditions": "basic-conditions", "socialNetwork": "social-network",
        "childrenFamily": "children-family",
    }
    advice = json.loads((example_dir("probation-advice", 2) / "valid-full.json").read_text())
    assert sections_present("probation-advice", 2, advice) == {
        "advice": "probation-advice", "basicConditions": "basic-conditions", "socialNetwork": "social-network",
        "health": "health",
    }


def test_sections_present_ignores_empty_lists_and_objects():
    minimal = json.loads((EXAMPLES / "screening-result" / "valid-minimal.json").read_text())
    payload = validate_payload("screening-result", 1, minimal).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert payload["instruments"] == []
    assert sections_present("screening-result", 1, payload) == {}
    assert sections_present("screening-result", 1, {**payload, "basicConditions": {}}) == {}
    assert sections_present("screening-result", 1, {**payload, "instruments": [{"instrument": "scil"}]}) == {"instruments": "health"}


RISK_18B = {"offenceKind": "violent", "justification": "Ernstig geweldsdelict; delen nodig voor de veiligheid van de ex-partner",
            "assertedBy": "Vestigingsdirecteur PI Vught", "assertedAt": "2026-11-20T09:00:00+01:00"}


def test_risk_18b_hook_returns_the_asserted_condition_in_v2_and_none_in_v1():
    full = json.loads((example_dir("risk-information", 2) / "valid-full.json").read_text())
    block = validate_payload("risk-information", 2, full).risk_18b()
    assert isinstance(block, Risk18b) and block.offence_kind is OffenceKind.VIOLENT
    assert block.asserted_by == "Vestigingsdirecteur PI Vught" and block.asserted_at.utcoffset() is not None
    assert sections_present("risk-information", 2, full)["risk18b"] == "risk-summary"
    assert validate_payload("risk-information", 2, {k: v for k, v in full.items() if k != "risk18b"}).risk_18b() is None
    v1 = json.loads((EXAMPLES / "risk-information" / "valid-full.json").read_text())
    assert validate_payload("risk-information", 1, v1).risk_18b() is None
    release = json.loads((example_dir("release-notice", 2) / "valid-full.json").read_text())
    assert validate_payload("release-notice", 2, release).risk_18b().offence_kind is OffenceKind.VIOLENT


def test_risk_18b_without_a_timezone_is_rejected():
    minimal = json.loads((example_dir("risk-information", 2) / "valid-minimal.json").read_text())
    payload = {**minimal, "risk18b": {**RISK_18B, "assertedAt": "2026-11-20T09:00:00"}}
    problems = _problems("risk-information", payload, version=2)
    assert list(problems) == ["/risk18b/assertedAt"]
    assert "timezone" in problems["/risk18b/assertedAt"]


def test_stated_municipalities_and_stay_arrival():
    notice = {"subject": {"skn": "12345678"}, "prisonOin": "00000001001234567000", "arrivalDate": "2026-11-02",
              "detentionKind": "remand"}
    model = validate_payload("detention-notice", 1, notice)
    assert model.stated_municipalities() == {} and model.stay_arrival().isoformat() == "2026-11-02"
    both = validate_payload("detention-notice", 1, {**notice, "municipalityOfResidence": "0363", "intendedMunicipality": "0599"})
    assert both.stated_municipalities() == {"residence": "0363", "intended": "0599"}
    only = validate_payload("detention-notice", 1, {**notice, "intendedMunicipality": "0599"})
    assert only.stated_municipalities() == {"intended": "0599"}

    for version in (1, 2):
        release = validate_payload("release-notice", version, json.loads((example_dir("release-notice", version) / "valid-full.json").read_text()))
        assert release.stated_municipalities() == {"intended": "0363"}
        assert release.stay_arrival().isoformat() == "2026-11-02"
    minimal = validate_payload("release-notice", 1, json.loads((EXAMPLES / "release-notice" / "valid-minimal.json").read_text()))
    assert minimal.stay_arrival() is None

    transfer = json.loads((example_dir("transfer-notice", 2) / "valid-full.json").read_text())
    assert validate_payload("transfer-notice", 2, transfer).stated_municipalities() == {"intended": "0363"}
    assert validate_payload("transfer-notice", 2, {k: v for k, v in transfer.items() if k != "intendedMunicipality"}).stated_municipalities() == {}
    assert validate_payload("transfer-notice", 1, json.loads((EXAMPLES / "transfer-notice" / "valid-full.json").read_text())).stated_municipalities() == {}


def test_contracts_and_consent_import_nothing_from_the_gateway():
    root = Path(__file__).resolve().parents[2]
    for package in ("contracts", "consent"):
        for source in (root / package).glob("*.py"):
            text = source.read_text()
            assert "import gateway" not in text and "from gateway" not in text, source
