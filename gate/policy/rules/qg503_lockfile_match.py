"""QG503: the model's files match their lockfile."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.interface import LockState

HINT = (
    "if the change is intended, re-run `gate lock` and commit the new lockfile in the same pull "
    "request; otherwise restore the pinned files"
)


class LockfileMatch(Rule):
    id = "QG503"
    slug = "weights.lockfile-match"
    stage = "weights"
    summary = "Every file of the baseline matches its lockfile: no changed, missing or extra file, same hub revision."
    why = (
        "The baseline is the reference every regression is measured against. A changed shard, a file\n"
        "dropped or added next to the weights (a new `*.py`, a swapped tokenizer), or a different hub\n"
        "revision silently changes what is being compared, and could smuggle in unreviewed content."
    )
    example = "# weights/support-assistant/model.safetensors was re-exported; the lockfile still pins the old sha256\n"
    use_instead = "# gate lock weights/support-assistant --out weights/support-assistant.lock.json, committed with the change\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None or scan.lock.state is not LockState.mismatch:
            return
        lock = scan.lock
        for change in lock.changed:
            yield Violation(
                f"{scan.model_file(change.path)}: sha256 is {change.actual_sha256} but lockfile {lock.lockfile} "
                f"pins {change.expected_sha256}",
                path=scan.model_file(change.path),
                hint=HINT,
                detail=change.model_dump(mode="json"),
            )
        for name in lock.missing:
            yield Violation(
                f"{scan.model_file(name)}: pinned by lockfile {lock.lockfile} but missing",
                path=lock.lockfile,
                hint=HINT,
            )
        for name in lock.extra:
            yield Violation(
                f"{scan.model_file(name)}: not in lockfile {lock.lockfile}",
                path=scan.model_file(name),
                hint=HINT,
            )
        if lock.revision_mismatch:
            yield Violation(
                f"model.revision: lockfile {lock.lockfile} records revision {lock.revision} but the spec pins "
                f"{lock.expected_revision}",
                key_path=("model", "revision"),
                hint="re-run `gate lock` on the snapshot of the pinned revision (`--revision`) and commit it",
            )
