"""QG509: every path in a spec stays inside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.yaml_source import KeyPath

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_path(dotted: str) -> KeyPath:
    """``quality.metrics[0].task`` -> ("quality", "metrics", 0, "task")."""
    return tuple(int(index) if index else name for name, index in _PART.findall(dotted))


class PathsConfined(Rule):
    id = "QG509"
    slug = "weights.paths-confined"
    stage = "weights"
    waivable = False
    summary = "Every path in a spec (model, lockfile, calibration, fidelity texts, task files) resolves inside the repository."
    why = (
        "The gate runs on self-hosted runners that hold credentials. A spec is untrusted input from a\n"
        "pull request: `calibration.source: /etc/passwd`, `../../.ssh/id_rsa` or a committed symlink\n"
        "pointing outside would make the gate read (and possibly echo) files that are not the\n"
        "repository's. Such paths are reported and never read; no waiver applies."
    )
    example = "calibration:\n  source: /etc/passwd\n"
    use_instead = "calibration:\n  source: data/calibration/support.jsonl\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        scan = facts.weights
        if scan is None:
            return
        for item in scan.confinement:
            inside_model = item.key.startswith("model.") and item.path != getattr(facts.loaded.spec.model, item.key[6:], None)
            yield Violation(
                f"{item.key}: {item.path!r} {item.reason}",
                key_path=key_path(item.key),
                path=item.path if inside_model else None,
                hint="use a path relative to the repository root, inside it (no absolute paths, `..` escapes or outside symlinks)",
            )
