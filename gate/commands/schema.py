"""`gate schema`: print the JSON Schema of spec documents (editors use it for completion)."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "print the JSON Schema of the ModelSpec document"

SCHEMA_ID = "https://quant-gate.dev/schema/modelspec-v1.json"


def model_spec_schema() -> dict[str, Any]:
    from gate.spec.models import ModelSpec

    schema = ModelSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render_schema() -> str:
    return json.dumps(model_spec_schema(), indent=2, sort_keys=True) + "\n"


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print(render_schema(), end="")
    return 0
