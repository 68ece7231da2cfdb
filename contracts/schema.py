"""Generate the committed JSON Schemas (``python -m contracts.schema``) and compare them in tests.
Each version has its own directory ``schemas/v<N>/`` and its own lock of released fields."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from contracts.registry import MODELS

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_file(message_type: str, version: int) -> Path:
    return SCHEMA_DIR / f"v{version}" / f"{message_type}.json"


def generate(model) -> dict:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:brb:contract:{model.MESSAGE_TYPE}:v{model.VERSION}"
    schema["x-message-type"] = model.MESSAGE_TYPE
    schema["x-version"] = model.VERSION
    return schema


def render(model) -> str:
    return json.dumps(generate(model), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def field_types(schema: dict) -> dict[str, str]:
    """Every property path of a schema -> its type signature (refs resolved, unions flattened).
    Used to prove a released version never loses or retypes a field."""
    defs = schema.get("$defs", {})
    out: dict[str, str] = {}

    def signature(node: dict) -> str:
        if "$ref" in node:
            return "object:" + node["$ref"].rsplit("/", 1)[-1]
        if "anyOf" in node or "oneOf" in node:
            return "|".join(sorted(signature(n) for n in node.get("anyOf", node.get("oneOf", []))))
        if "enum" in node:
            return "enum"
        if "const" in node:
            return "const"
        if node.get("type") == "array":
            return "array<" + signature(node.get("items", {})) + ">"
        return str(node.get("type", "any"))

    def walk(node: dict, path: str, seen: tuple[str, ...]) -> None:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                walk(defs[name], path, seen + (name,))
            return
        for variant in node.get("anyOf", []) + node.get("oneOf", []):
            walk(variant, path, seen)
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], path + "/*", seen)
        for name, prop in node.get("properties", {}).items():
            out[f"{path}/{name}"] = signature(prop)
            walk(prop, f"{path}/{name}", seen)

    walk(schema, "", ())
    return out


def versions() -> list[int]:
    return sorted({m.VERSION for m in MODELS})


def lock_file(version: int) -> Path:
    return SCHEMA_DIR / f"v{version}" / "fields.lock.json"


def write_lock(version: int) -> Path:
    """Record the released field map of ``version`` (at its release, and when optional fields are added).
    It only ever adds: a recorded field keeps its recorded type, so re-running cannot hide a removed or
    retyped field from the compatibility test."""
    path = lock_file(version)
    lock: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for model in MODELS:
        if model.VERSION == version:
            recorded = lock.setdefault(model.MESSAGE_TYPE, {})
            for field, signature in field_types(generate(model)).items():
                recorded.setdefault(field, signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_all(only: Iterable[int] | None = None) -> list[Path]:
    """Write the schema of every model (or of the versions in ``only``) to ``schemas/v<N>/<type>.json``."""
    wanted = set(only) if only is not None else set(versions())
    written = []
    for model in MODELS:
        if model.VERSION not in wanted:
            continue
        path = schema_file(model.MESSAGE_TYPE, model.VERSION)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m contracts.schema", description="Regenerate the committed JSON Schemas.")
    parser.add_argument("--lock", type=int, action="append", default=[], choices=versions(), metavar="VERSION",
                        help="also record the released fields of VERSION in schemas/v<VERSION>/fields.lock.json (repeatable)")
    args = parser.parse_args(argv)
    shown = lambda p: p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p  # noqa: E731
    for version in args.lock:
        print(shown(write_lock(version)), file=sys.stderr)
    for path in write_all():
        print(shown(path), file=sys.stderr)


if __name__ == "__main__":
    main()
