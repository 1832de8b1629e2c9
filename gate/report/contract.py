"""The JSON Schema of the result contract (``schema/result.schema.json``), generated from ``GateResult``.

Regenerate after changing ``gate/result.py``::

    python -m gate.report.contract > schema/result.schema.json

A test fails while the committed file is out of date.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from gate.result import RESULT_SCHEMA_VERSION, GateResult

SCHEMA_ID = "https://quant-gate.dev/schema/result.schema.json"


def result_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one result; a result file holds one result or a list of them."""
    one = GateResult.model_json_schema(mode="serialization")
    defs = one.pop("$defs", {})
    defs["GateResult"] = one
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"quant-gate result (schema_version {RESULT_SCHEMA_VERSION})",
        "description": "One GateResult per spec, or a list of them. See docs/result-schema.md.",
        "oneOf": [
            {"$ref": "#/$defs/GateResult"},
            {"type": "array", "items": {"$ref": "#/$defs/GateResult"}},
        ],
        "$defs": defs,
    }


def render_schema() -> str:
    return json.dumps(result_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_schema())
