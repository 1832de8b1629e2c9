"""QG502: the lockfile a spec names exists."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import LockState


class LockfilePresent(Rule):
    id = "QG502"
    slug = "weights.lockfile-present"
    stage = "weights"
    summary = "The sha256 lockfile named by `model.lockfile` exists in the repository."
    why = (
        "A lockfile pins every file of the baseline (path, size, sha256) in git, so the weights the\n"
        "gate checked are the weights that get quantized and compared. A spec that names a lockfile\n"
        "nobody committed pins nothing: the files could be swapped without any diff in review."
    )
    example = "model:\n  path: weights/support-assistant\n  lockfile: weights/support-assistant.lock.json   # never committed\n"
    use_instead = (
        "# gate lock weights/support-assistant --out weights/support-assistant.lock.json; git add it\n"
        "model:\n  path: weights/support-assistant\n  lockfile: weights/support-assistant.lock.json\n"
    )

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None or scan.lock.state is not LockState.missing:
            return
        model = facts.loaded.spec.model
        target = model.path or model.gguf or "MODEL_PATH"
        yield Violation(
            f"model.lockfile: {scan.lock.lockfile} does not exist",
            key_path=("model", "lockfile"),
            hint=f"run `gate lock {target} --out {scan.lock.lockfile}` and commit the lockfile",
        )
