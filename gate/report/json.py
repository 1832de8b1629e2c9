"""JSON report: the result contract itself (documented in docs/result-schema.md).

One result renders as one object, several as a list; ``gate report`` reads both back.
"""

from __future__ import annotations

import json

from gate.report.interface import ReportContext
from gate.result import GateResult


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    payload = [r.model_dump(mode="json") for r in results]
    return json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, ensure_ascii=False) + "\n"
