"""The built-in rule interface. One rule per module under ``gate/policy/rules/``.

A rule is a pure function of ``Facts`` (the loaded spec plus what earlier stages measured) and its
parameters (a pydantic model whose defaults are the built-in standard; org policies override
them). It yields ``Violation``s pointing at the offending key; the engine turns them into
``Finding``s with the severity, mode and waivers the policies set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from gate.policy.facts import Facts
from gate.result import Severity
from gate.spec.yaml_source import KeyPath


class NoParams(BaseModel):
    """Parameters of a rule that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Violation:
    """One thing a rule found wrong."""

    message: str
    key_path: KeyPath = ()
    """Spec key the finding points at (its line:col comes from the source map)."""
    hint: str | None = None
    detail: dict[str, object] | None = None
    path: str | None = None
    """A file other than the spec (e.g. a weight file); overrides key_path's location."""
    line: int | None = None
    col: int | None = None
    """Position in ``path`` (e.g. a task file's key)."""
    member: str | None = None
    """The member path inside an archive ``path`` (nested archives joined by ``!/``)."""


class Rule:
    """Base of built-in rules. Subclasses set the class attributes and implement ``check``."""

    id: ClassVar[str]
    """e.g. QG101; ranges: 1xx SCALE, 2xx precision/format, 3xx calibration, 4xx quality,
    5xx weights, 6xx plan, 7xx rollout."""
    slug: ClassVar[str]
    """Dotted name, e.g. scale.constraint-declared."""
    severity: ClassVar[Severity] = Severity.deny
    stage: ClassVar[str] = "policy"
    """Stage whose facts the rule reads: spec, weights, plan, policy."""
    waivable: ClassVar[bool] = True
    """False for rules no waiver may silence (e.g. unsafe pickle, remote code)."""
    summary: ClassVar[str]
    """One line: what the rule requires."""
    why: ClassVar[str]
    """Why is this bad? (the standard behind the rule)"""
    example: ClassVar[str]
    """A spec fragment that violates the rule."""
    use_instead: ClassVar[str]
    """The same fragment, fixed."""
    params: ClassVar[type[BaseModel]] = NoParams

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        raise NotImplementedError

    @classmethod
    def explain(cls) -> str:
        """The text ``gate explain`` prints."""
        return (
            f"{cls.id} {cls.slug} ({cls.severity.value})\n\n{cls.summary}\n\n"
            f"Why is this bad?\n{cls.why}\n\nExample\n{cls.example.rstrip()}\n\n"
            f"Use instead\n{cls.use_instead.rstrip()}\n"
        )
