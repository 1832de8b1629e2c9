"""Terminal report (minimal; issue #7 makes it rich)."""

from __future__ import annotations

from gate.result import GateResult


def render(results: list[GateResult]) -> str:
    lines: list[str] = []
    for r in results:
        for f in r.findings:
            where = f"{f.location}: " if f.location else ""
            lines.append(f"{where}{f.rule_id} [{f.severity.value}] {f.message}")
            if f.hint:
                lines.append(f"  Hint: {f.hint}")
        lines.append(f"{r.spec.path}: {r.verdict.decision.value.upper()}")
    return "\n".join(lines) + "\n"
