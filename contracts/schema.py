"""Generate the committed JSON Schemas (``python -m contracts.schema``) and compare them in tests."""
from __future__ import annotations

import json
import sys
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


def write_all() -> list[Path]:
    written = []
    for model in MODELS:
        path = schema_file(model.MESSAGE_TYPE, model.VERSION)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_all():
        print(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p, file=sys.stderr)
