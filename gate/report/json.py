"""JSON report: the result contract itself."""

from __future__ import annotations

import json

from gate.result import GateResult


def render(results: list[GateResult]) -> str:
    payload = [r.model_dump(mode="json") for r in results]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n"
