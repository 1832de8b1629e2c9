"""A loaded set of org policies and how it resolves for one spec.

Composition, deterministically: policy files in name order, entries in file order; for one spec a
rule's parameters merge in that order, ``enabled``/``mode``/``enforce_after`` take the last entry
that sets them, and the severity is the strictest any matching entry sets (deny beats warn; a
disagreement between two files is reported as QG002). Resolution is cached per combination of
matching entries, so judging 1,000 specs costs little more than the rules themselves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gate.engine_checks import SEVERITY_CONFLICT
from gate.errors import SourceLocation, SpecError
from gate.plan.catalog import Hardware, HardwareCatalog
from gate.policy.cel import CelProgram
from gate.policy.models import CustomRule, RuleSetting, SettingsEntry
from gate.policy.rule import Rule
from gate.policy.rules import builtin_rules
from gate.policy.rules.qg403_tolerance_bounds import ToleranceBounds
from gate.policy.waivers import PlacedWaiver
from gate.result import Finding, Severity
from gate.spec.loader import LoadedSpec
from gate.spec.models import Metadata

TOLERANCE_RULE = "QG403"


class GateSettings(BaseModel):
    """Settings later stages read for one spec (``PolicySet.settings_for``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inconclusive: Literal["block", "allow"] = "block"
    """What an inconclusive verdict does: block (fail closed, the default) or allow."""
    clip_search_allowed: bool = True
    """Whether AWQ clip search may run (policies turn it off to bound quantization time)."""
    tolerance_bounds: ToleranceBounds = Field(default_factory=ToleranceBounds)
    """The loosest tolerances the spec's tier may declare (QG403's parameters for this spec)."""


@dataclass(frozen=True)
class PlacedSetting:
    """One `rules:` entry of a policy and where it is written."""

    setting: RuleSetting
    policy: str
    location: SourceLocation


@dataclass(frozen=True)
class PlacedCustomRule:
    """One compiled `custom_rules:` entry and where it is written."""

    rule: CustomRule
    program: CelProgram
    policy: str
    location: SourceLocation


@dataclass(frozen=True)
class ResolvedRule:
    """One rule as configured for one spec."""

    rule_cls: type[Rule]
    enabled: bool
    severity: Severity
    mode: str
    """audit | enforce, before ``enforce_after`` is applied."""
    enforce_after: dt.date | None
    params: BaseModel
    policy: str | None
    """The last policy file that configured the rule (None: built-in defaults)."""
    conflict: Finding | None = None

    def effective_mode(self, today: dt.date) -> str:
        if self.enforce_after is not None:
            return "audit" if today < self.enforce_after else "enforce"
        return self.mode


@dataclass(frozen=True)
class PolicySet:
    """Every policy file, parsed and checked once; judges any number of specs."""

    files: tuple[str, ...] = ()
    entries: dict[str, tuple[PlacedSetting, ...]] = field(default_factory=dict)
    custom: tuple[PlacedCustomRule, ...] = ()
    settings: tuple[SettingsEntry, ...] = ()
    hardware: dict[str, Hardware] = field(default_factory=dict)
    waivers: tuple[PlacedWaiver, ...] = ()
    source: str = "built-in defaults"
    """Where the policies came from: a directory, ``<ref>:policies/``, or built-in defaults."""
    _cache: dict[tuple[str, tuple[int, ...]], ResolvedRule] = field(default_factory=dict, compare=False, repr=False)

    # -- interfaces other stages call ---------------------------------------------------------
    def extend_catalog(self, catalog: HardwareCatalog) -> HardwareCatalog:
        """``catalog`` plus the policies' ``hardware:`` entries."""
        if not self.hardware:
            return catalog
        return HardwareCatalog({**catalog.entries, **self.hardware})

    def settings_for(self, loaded: LoadedSpec) -> GateSettings:
        meta = loaded.spec.metadata
        values: dict[str, Any] = {}
        for entry in self.settings:
            if entry.scope.matches(meta):
                values.update({k: v for k, v in entry.model_dump(exclude={"scope"}).items() if v is not None})
        bounds = self.resolve(TOLERANCE_RULE, meta).params if TOLERANCE_RULE in builtin_rules() else ToleranceBounds()
        assert isinstance(bounds, ToleranceBounds)
        return GateSettings(**values, tolerance_bounds=bounds)

    # -- resolution ---------------------------------------------------------------------------
    def resolve(self, rule_id: str, meta: Metadata) -> ResolvedRule:
        entries = self.entries.get(rule_id, ())
        matched = tuple(i for i, e in enumerate(entries) if e.setting.scope.matches(meta)) if entries else ()
        key = (rule_id, matched)
        cached = self._cache.get(key)
        if cached is None:
            cached = _resolve(builtin_rules()[rule_id], [entries[i] for i in matched])
            self._cache[key] = cached
        return cached


def _resolve(rule_cls: type[Rule], entries: list[PlacedSetting]) -> ResolvedRule:
    enabled = True
    mode = "enforce"
    enforce_after: dt.date | None = None
    params: dict[str, Any] = rule_cls.params().model_dump()
    severities: list[tuple[str, PlacedSetting]] = []
    for entry in entries:
        s = entry.setting
        if s.enabled is not None:
            enabled = s.enabled
        if s.mode is not None or s.enforce_after is not None:
            mode = s.mode or "enforce"
            enforce_after = s.enforce_after
        params.update(s.params)
        if s.severity is not None:
            severities.append((s.severity, entry))
    severity = rule_cls.severity
    conflict = None
    if severities:
        severity = Severity.deny if any(sev == "deny" for sev, _ in severities) else Severity.warn
        conflict = _conflict(rule_cls, severities)
    last = entries[-1] if entries else None
    try:
        model = rule_cls.params.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SpecError(
            f"{rule_cls.id}: the parameters of the matching policy entries do not combine: {clean_message(err['msg'])}",
            hint="make the scoped entries agree (e.g. min below max)",
            location=last.location if last else None,
        ) from None
    return ResolvedRule(
        rule_cls=rule_cls,
        enabled=enabled,
        severity=severity,
        mode=mode,
        enforce_after=enforce_after,
        params=model,
        policy=last.policy if last else None,
        conflict=conflict,
    )


def _conflict(rule_cls: type[Rule], severities: list[tuple[str, PlacedSetting]]) -> Finding | None:
    deny = next((e for sev, e in severities if sev == "deny"), None)
    warn = next((e for sev, e in severities if sev == "warn"), None)
    if deny is None or warn is None or deny.policy == warn.policy:
        return None
    return SEVERITY_CONFLICT.finding(
        f"{rule_cls.id}: {warn.location} sets severity warn but {deny.location} sets deny; deny wins "
        "(the stricter severity always wins, so adding a policy can only tighten a rule)",
        warn.location,
        warn.policy,
        hint="remove one of the two settings, or give them scopes that do not overlap",
    )



def clean_message(message: str) -> str:
    """A pydantic message without its ``Value error, `` prefix."""
    return message.removeprefix("Value error, ")
