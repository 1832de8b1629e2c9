"""QG501: the full-precision baseline is pinned."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.models import HEX40


class BaselinePinned(Rule):
    id = "QG501"
    slug = "baseline.pinned"
    summary = "The baseline is pinned: a hub source at a 40-hex commit, or local weights with a committed lockfile."
    why = (
        "Every comparison is against the full-precision baseline. A moving revision such as `main` can\n"
        "change under the gate, so a regression could not be attributed and a re-run would compare\n"
        "against different weights. Local weights need a sha256 lockfile for the same reason."
    )
    example = "model:\n  hub: example-org/support-assistant\n  revision: main\n"
    use_instead = "model:\n  hub: example-org/support-assistant\n  revision: 0123456789abcdef0123456789abcdef01234567\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        model = facts.loaded.spec.model
        if model.kind == "hub":
            if model.revision is None:
                yield Violation(
                    f"model.revision: missing; hub baseline {model.hub} is not pinned",
                    key_path=("model",),
                    hint="add `revision:` with the 40-hex commit of the hub repo",
                )
            elif not HEX40.match(model.revision):
                yield Violation(
                    f"model.revision: {model.revision!r} is a moving reference, not a pinned baseline",
                    key_path=("model", "revision"),
                    hint="use the 40-hex commit the reference points to (e.g. `git ls-remote`)",
                )
        elif model.lockfile is None:
            yield Violation(
                f"model.lockfile: missing; local baseline {model.path or model.gguf} is not pinned",
                key_path=("model",),
                hint="run `gate lock SPEC` and commit the lockfile",
            )
