"""QG307: no placeholder values (``TODO(owner)``, what ``gate init`` scaffolds) are left in a spec."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.spec.yaml_source import KeyPath

PLACEHOLDER = re.compile(r"\bTODO\b|\bFIXME\b|\bTBD\b|\bCHANGEME\b|(?:^|/)path/to/|^<[^<>]+>$")
"""``TODO(owner)`` / ``TODO-owner`` (what ``gate init`` writes where a human decides), the usual
FIXME/TBD/CHANGEME markers, ``path/to/...`` and a whole value in angle brackets (``<sha256>``)."""


def is_placeholder(value: str) -> bool:
    return PLACEHOLDER.search(value) is not None


def placeholders(data: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """(key path, value) of every placeholder string in the spec's data, in document order."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from placeholders(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from placeholders(value, (*path, index))
    elif isinstance(data, str) and is_placeholder(data):
        yield path, data


def dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class NoPlaceholders(Rule):
    id = "QG307"
    slug = "spec.no-placeholders"
    summary = "No placeholder value (`TODO(owner)`, `TODO-owner`, `path/to/...`, `<...>`) is left in the spec."
    why = (
        "`gate init` writes `TODO(owner)` where a human must decide (the owner, the calibration\n"
        "source, a justification). A placeholder that reaches review reads like a decision nobody\n"
        "made: a `justification: \"TODO(owner): ...\"` satisfies the field but justifies nothing, and a\n"
        "placeholder calibration source is only found when the GPU runner tries to read it."
    )
    example = 'metadata:\n  owner: "TODO-owner"\ncalibration:\n  source: "TODO(owner): path/to/production-sample.jsonl"\n'
    use_instead = "metadata:\n  owner: team-support\ncalibration:\n  source: data/calibration/support.jsonl\n"

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        data = facts.loaded.spec.model_dump(mode="json", exclude_none=True)
        for path, value in placeholders(data):
            yield Violation(
                f"{dotted(path)}: {value!r} is a placeholder",
                key_path=path,
                hint="replace it with the real value (`gate init` leaves TODO(owner) where a human decides)",
            )
