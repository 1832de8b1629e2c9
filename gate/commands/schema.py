"""`gate schema`: print the JSON Schema of spec or policy documents (editors use it for completion).

``gate schema`` (or ``--kind modelspec``) prints the ModelSpec schema, committed as
``schema/modelspec.schema.json``; ``gate schema --kind policy`` prints the Policy schema, committed
as ``schema/policy.schema.json``. Both are generated from the pydantic models and light to import.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

HELP = "print the JSON Schema of the ModelSpec document (or of a Policy document with --kind policy)"

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://quant-gate.dev/schema/modelspec-v1.json"
POLICY_SCHEMA_ID = "https://quant-gate.dev/schema/policy-v1.json"


def model_spec_schema() -> dict[str, Any]:
    from gate.spec.models import ModelSpec

    schema = ModelSpec.model_json_schema()
    return {"$schema": DRAFT, "$id": SCHEMA_ID, **schema}


def policy_schema() -> dict[str, Any]:
    from gate.policy.models import PolicyDocument

    schema = PolicyDocument.model_json_schema()
    return {"$schema": DRAFT, "$id": POLICY_SCHEMA_ID, **schema}


KINDS: dict[str, Callable[[], dict[str, Any]]] = {"modelspec": model_spec_schema, "policy": policy_schema}
"""``--kind`` choices and the schema each prints; the first is the default."""


def render_schema(kind: str = "modelspec") -> str:
    """The schema of ``kind`` as committed under ``schema/``: sorted keys, 2-space indent, final newline."""
    return json.dumps(KINDS[kind](), indent=2, sort_keys=True) + "\n"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=list(KINDS),
        default="modelspec",
        help="document kind: modelspec (default; schema/modelspec.schema.json) or policy (schema/policy.schema.json)",
    )


def run(args: argparse.Namespace) -> int:
    print(render_schema(args.kind), end="")
    return 0
