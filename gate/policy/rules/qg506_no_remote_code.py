"""QG506: loading the model runs no code from its repository."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation

HINT = "use an architecture transformers ships (no `auto_map`, no `*.py` next to the weights); no waiver applies"


class NoRemoteCode(Rule):
    id = "QG506"
    slug = "weights.no-remote-code"
    stage = "weights"
    waivable = False
    summary = "No `trust_remote_code`, no `auto_map` in the model's configs and no `*.py` files next to the weights."
    why = (
        "`trust_remote_code`, an `auto_map` entry in config.json or Python files in the model directory\n"
        "make transformers import and run code from the model's repository on a runner that holds\n"
        "credentials: the same risk class as an unsafe pickle. No waiver can allow it."
    )
    example = "model:\n  hub: example-org/custom-arch\n  revision: 0123456789abcdef0123456789abcdef01234567\n  trust_remote_code: true\n"
    use_instead = "model:\n  hub: example-org/llama-arch\n  revision: 0123456789abcdef0123456789abcdef01234567\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        trust = facts.loaded.spec.model.trust_remote_code or (scan is not None and scan.remote_code.trust_remote_code)
        if trust:
            yield Violation(
                "model.trust_remote_code: true would run code from the model repository",
                key_path=("model", "trust_remote_code"),
                hint="remove `trust_remote_code`; " + HINT,
            )
        if scan is None:
            return
        for path in scan.remote_code.py_files:
            yield Violation(f"{path}: Python file in the model directory (remote code)", path=path, hint=HINT)
        for path in scan.remote_code.auto_map_files:
            entries = "; ".join(scan.remote_code.auto_map)
            yield Violation(
                f"{path}: auto_map makes transformers load code from the model repository ({entries})",
                path=path,
                hint=HINT,
                detail={"auto_map": scan.remote_code.auto_map},
            )
