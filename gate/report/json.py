"""JSON report: the result contract itself (documented in docs/result-schema.md).

One result renders as one object, several as a list; ``gate report`` reads both back.
"""

from __future__ import annotations

import json
import re

from gate.report.interface import ReportContext
from gate.result import GateResult

_C1 = re.compile(r"[\x7f-\x9f]")


def render(results: list[GateResult], context: ReportContext | None = None) -> str:
    """The results as JSON; control characters stay data (``\\u001b``), never raw bytes in the output.

    ``json.dumps`` escapes C0 controls; DEL and C1 (an 8-bit CSI is ``\\x9b``) are escaped here.
    """
    payload = [r.model_dump(mode="json") for r in results]
    text = json.dumps(payload[0] if len(payload) == 1 else payload, indent=2, ensure_ascii=False)
    return _C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text) + "\n"
