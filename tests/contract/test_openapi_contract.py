"""The published document as a contract: stable camelCase operationIds, problem types per route, and
examples that satisfy the schemas they illustrate."""
from __future__ import annotations

import re

import jsonschema
import pytest

from gateway.api.examples import EXAMPLES
from gateway.app import create_app
from gateway.openapi import build

DOC = build(create_app())
OPERATIONS = [(path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()]


def _validate(instance, schema: dict) -> None:
    schema = {**schema, "components": DOC["components"]}  # local #/components/... refs resolve in the document
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


def test_every_operation_has_a_unique_camel_case_operation_id():
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert all(re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert {"sendMessage", "listSentMessages", "listInbox", "readMessage", "acknowledgeMessage", "listDeliveries",
            "recordConsent", "withdrawConsent", "listConsents"} <= set(ids)


def _route_scopes() -> dict[str, tuple[str, ...]]:
    from gateway.openapi import _api_routes, _scopes, operation_id

    return {operation_id(r): _scopes(r) for r in _api_routes(create_app())}


ROUTE_SCOPES = _route_scopes()


@pytest.mark.parametrize("path,method,op", OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS])
def test_each_operation_lists_the_problems_it_can_answer(path, method, op):
    errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
    # any token may ask for a scope its kind may not hold (403), any path may be misspelt (404)
    assert {"401", "403", "404", "429", "500"} <= set(errors)
    assert "trailing slash" in errors["404"]["description"]
    for status, response in errors.items():
        for slug, example in response["content"]["application/problem+json"]["examples"].items():
            assert example["value"]["status"] == int(status) and example["value"]["type"].endswith("/" + slug)
            assert f"`{slug}`" in response["description"]
    scope = errors.get("403", {}).get("content", {}).get("application/problem+json", {}).get("examples", {}).get("insufficient-scope")
    needs = ROUTE_SCOPES[op["operationId"]]
    if needs:  # a route that needs a scope names it
        assert scope["value"]["detail"] == f"this operation needs scope {' or '.join(needs)}", scope
    else:
        assert "may not hold" in scope["value"]["detail"]


def test_the_problems_a_route_declares_are_in_the_document():
    """``responses=problems(...)`` on the route (beyond those its signature implies) reach the document."""
    by_id = {op["operationId"]: op for _, _, op in OPERATIONS}
    assert "409" in by_id["withdrawConsent"]["responses"] and "409" in by_id["addOrganisation"]["responses"]
    assert "exchange-not-allowed" in by_id["sendMessage"]["responses"]["403"]["content"]["application/problem+json"]["examples"]


def test_the_purposes_are_closed_sets_and_the_payload_is_typed_per_contract():
    schemas = DOC["components"]["schemas"]
    purposes = schemas["MessageView"]["properties"]["purpose"]["enum"]
    assert "aftercare" in purposes and "nazorg" not in purposes
    read = next(op for p, m, op in OPERATIONS if op["operationId"] == "readMessage")
    assert next(p for p in read["parameters"] if p["name"] == "purpose")["schema"]["enum"] == purposes
    assert schemas["DeliveryStatus"]["properties"]["recipientKind"]["enum"]
    members = [schemas[m["$ref"].rsplit("/", 1)[1]] for m in schemas["SendMessageRequest"]["oneOf"]]
    assert {(m["properties"]["type"]["const"], m["properties"]["version"]["minimum"]) for m in members} >= {("dr-plan", 1), ("dr-plan", 2)}


def _success_media(op: dict) -> list[tuple[str, str, dict]]:
    """(status, media type, content) of each 2xx answer that has a body."""
    return [(s, media, content) for s, r in op["responses"].items() if s[0] == "2"
            for media, content in r.get("content", {}).items()]


def _example_key(media: str) -> str:
    return "response" if media == "application/json" else f"response {media}"


@pytest.mark.parametrize("path,method,op", OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS])
def test_each_operation_has_examples_that_satisfy_its_schemas(path, method, op):
    """A route added without an example fails here, by name: add one to gateway/api/examples.py."""
    operation_id = op["operationId"]
    assert operation_id in EXAMPLES, f"{operation_id} ({method.upper()} {path}) has no examples in gateway/api/examples.py"
    examples = EXAMPLES[operation_id]
    expected = ({"request"} if "requestBody" in op else set()) | {
        _example_key(media) for _, media, content in _success_media(op)
        if media != "application/json" or content.get("schema")}  # a schema-less JSON entry is FastAPI's default, unused
    assert set(examples) == expected, f"{operation_id}: examples for {sorted(expected)}, not {sorted(examples)}"
    if "requestBody" in op:
        body = op["requestBody"]["content"]["application/json"]
        assert body["example"] == examples["request"]
        _validate(examples["request"], body["schema"])
    for status, media, content in _success_media(op):
        key = _example_key(media)
        if key not in expected:
            continue
        assert content["example"] == examples[key], f"{operation_id}: {status} {media} carries no example"
        if media == "application/json":
            _validate(examples[key], content["schema"])
        else:
            assert isinstance(examples[key], str) and examples[key].strip(), f"{operation_id}: {media} example is text"


@pytest.mark.parametrize("path,method,op", OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS])
def test_each_path_parameter_and_required_parameter_has_a_valid_example(path, method, op):
    """Except a closed set (an enum names its values): a generated collection starts from a working request."""
    for param in op.get("parameters", []):
        if param["in"] == "path" or (param.get("required") and "enum" not in param["schema"]):
            assert "example" in param, f"{op['operationId']}: {param['in']} parameter {param['name']} has no example " \
                                       "(add it to PARAMETERS in gateway/api/examples.py)"
            _validate(param["example"], param["schema"])


def test_no_example_is_left_over_from_an_operation_that_is_gone():
    assert set(EXAMPLES) <= {op["operationId"] for _, _, op in OPERATIONS}


def _strings_under(node, key: str):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            yield from _strings_under(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _strings_under(v, key)


def test_the_examples_use_test_bsns_only():
    """A BSN in an example is one of the 99999xxxx test numbers the tests use, never a real person's."""
    bsns = list(_strings_under(EXAMPLES, "bsn"))
    assert bsns and all(b.startswith("99999") for b in bsns), bsns
