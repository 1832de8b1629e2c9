"""Checks the engine itself makes about policies and waivers (QG002-QG005), and the evaluation
stage's sample-size check (QG490).

They are not spec rules: they cannot be configured, scoped or waived. They have the same docs as
rules so ``gate explain QG004`` works and ``docs/rules.md`` lists them. This module sits below
``policy/`` and ``evaluate/`` (it needs only the result contract) so both can raise them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.errors import SourceLocation
from gate.result import Finding, Location, Severity


@dataclass(frozen=True)
class EngineCheck:
    id: str
    slug: str
    severity: Severity
    summary: str
    why: str
    example: str
    use_instead: str

    def finding(
        self,
        message: str,
        where: SourceLocation,
        policy: str,
        *,
        hint: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Finding:
        """A finding of this check, pointing at the policy line that caused it."""
        return Finding(
            rule_id=self.id, slug=self.slug, severity=self.severity, message=message,
            location=Location.of(where), hint=hint, stage="policy", policy=policy, detail=detail or {},
        )

    def explain(self) -> str:
        return (
            f"{self.id} {self.slug} ({self.severity.value})\n\n{self.summary}\n\n"
            f"Why is this bad?\n{self.why}\n\nExample\n{self.example.rstrip()}\n\n"
            f"Use instead\n{self.use_instead.rstrip()}\n"
        )


SEVERITY_CONFLICT = EngineCheck(
    "QG002", "policy.severity-conflict", Severity.warn,
    "Two policy files set different severities for one rule on the same spec; the stricter (deny) wins.",
    "Policies compose; which file wins must not depend on file order. The stricter severity always\n"
    "wins, so adding a policy can tighten a rule but never loosen another policy's.",
    "# policies/a.yaml\nrules:\n  - {rule: QG204, severity: deny}\n# policies/b.yaml\nrules:\n  - {rule: QG204, severity: warn}\n",
    "# one file owns the rule's severity, or the scopes do not overlap\n"
    "rules:\n  - {rule: QG204, severity: deny, scope: {tiers: [critical]}}\n",
)
NOT_WAIVABLE = EngineCheck(
    "QG003", "waiver.not-waivable", Severity.deny,
    "A waiver names a rule that can never be waived (e.g. the SCALE stages, unsafe pickle, remote code).",
    "Some standards have no acceptable exception. The waiver is ignored, and reported so the policy\n"
    "owner removes it.",
    "waivers:\n  - {rule: QG101, models: [support-*], reason: later, owner: team-x, expires: 2027-01-01}\n",
    "# fix the spec: add the constraint section\n",
)
WAIVER_EXPIRED = EngineCheck(
    "QG004", "waiver.expired", Severity.deny,
    "A waiver covering this model is past its expiry date; it no longer applies and blocks until renewed or removed.",
    "Waivers are reviewed exceptions with an end date. An expired waiver means the follow-up did not\n"
    "happen; silently dropping it would hide that.",
    "waivers:\n  - {rule: QG203, models: [demo], reason: r, owner: team-x, expires: 2025-01-01}\n",
    "waivers:\n  - {rule: QG203, models: [demo], reason: r, owner: team-x, expires: 2027-03-31}  # re-reviewed\n",
)
WAIVER_UNUSED = EngineCheck(
    "QG005", "waiver.unused", Severity.warn,
    "A waiver covering this model matched no finding: the problem was fixed, or the waiver names the wrong rule.",
    "Stale waivers accumulate and would silently cover the next real violation. Remove them.",
    "waivers:\n  - {rule: QG302, models: [demo], reason: r, owner: team-x, expires: 2027-01-01}  # spec has its sha256 now\n",
    "# delete the waiver\n",
)

EVAL_SET_TOO_SMALL = EngineCheck(
    "QG490", "evaluate.eval-set-resolves-tolerance", Severity.deny,
    "The evaluation set must be large enough to resolve the declared tolerance at the declared confidence.",
    "Some eval sets can never PASS a tight tolerance: with 300 items a 1-point drop cannot be excluded at\n"
    "95% even when every item agrees (304 are needed). `gate run` checks every metric before any model\n"
    "runs and refuses such a set as INCONCLUSIVE, saying how many items are needed, instead of spending\n"
    "compute on a verdict that cannot come; the policy's `inconclusive` setting decides whether that\n"
    "blocks (it does by default). Sets that can PASS are not refused: how likely they are to is shown\n"
    "by `gate check` as the power of each criterion and of the spec, and an INCONCLUSIVE metric reports\n"
    "the items it would need, projected from the spread the run measured (docs/verdict.md).",
    "quality:\n  metrics:\n    - {task: qg_reasoning, metric: acc, max_drop: 0.5, limit: 200}\n",
    "quality:\n  metrics:\n    - {task: qg_reasoning, metric: acc, max_drop: 2.0}   # all 2000 items\n",
)

ENGINE_CHECKS: dict[str, EngineCheck] = {
    c.id: c for c in (SEVERITY_CONFLICT, NOT_WAIVABLE, WAIVER_EXPIRED, WAIVER_UNUSED, EVAL_SET_TOO_SMALL)
}
