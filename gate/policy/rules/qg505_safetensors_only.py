"""QG505: weights are safetensors (or GGUF), not pickle, even allowlist-clean pickle."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import FileVerdict


class SafetensorsOnly(Rule):
    id = "QG505"
    slug = "weights.safetensors-only"
    stage = "weights"
    summary = "Weight files are safetensors or GGUF; pickle checkpoints are denied even when allowlist-clean."
    why = (
        "safetensors cannot execute code on load and is validated from its header alone. A pickle\n"
        "whose globals are all on the allowlist is probably a plain tensor checkpoint, but every\n"
        "loader still runs a pickle VM on it (`weights_only` has had code-execution CVEs). A\n"
        "legacy model may be waived, with an owner and an expiry, when its globals are allowlist-clean."
    )
    example = "# weights/legacy-model/pytorch_model.bin (torch.save of a state_dict)\nmodel:\n  path: weights/legacy-model\n"
    use_instead = "# weights/legacy-model/model.safetensors (save_pretrained(..., safe_serialization=True))\nmodel:\n  path: weights/legacy-model\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.safe_by_allowlist):
            shown = ", ".join(report.globals) if report.globals else "no globals"
            yield Violation(
                f"{report.path}: pickle weights ({report.format.value}, allowlist-clean: {shown}); only safetensors is accepted",
                path=report.path,
                hint=(
                    "re-save as safetensors in an isolated environment (`save_pretrained(..., safe_serialization=True)`), "
                    "or waive QG505 for this legacy model"
                ),
                detail={"format": report.format.value, "globals": report.globals, "members": report.members},
            )
