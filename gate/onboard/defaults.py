"""The policy values ``gate init`` writes into a new spec, resolved for the spec's tier.

They are the rules' parameters as the org's policies resolve them for the new spec's metadata
(tier, owner, labels), falling back to the built-in defaults, so a fresh spec sits inside the
bounds ``gate check`` will enforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from gate.spec.models import Metadata, Tier

if TYPE_CHECKING:
    from gate.policy.rules.qg207_sanctioned_backend import BackendPin


@dataclass(frozen=True)
class Sanctioned:
    method: str
    bits: int
    target: str
    """gpu | cpu | any"""


@dataclass(frozen=True)
class PolicyDefaults:
    """Bounds and defaults for one tier."""

    tier: Tier
    max_drop: float | None
    max_relative_increase: float | None
    max_kl: float | None
    max_flip_rate: float | None
    min_samples: int
    max_samples: int
    min_confidence: float
    stress_required: bool
    stress_suites: tuple[str, ...]
    rollout_required: bool
    min_headroom: float
    sanctioned: tuple[Sanctioned, ...]
    pins: tuple[BackendPin, ...]
    """QG207's backend per algorithm and target, as the policies resolve it for this spec."""
    source: str
    """Where the values came from, for the spec's comments."""


def _resolved(rule_id: str, policy_set: Any, meta: Metadata) -> tuple[BaseModel, bool]:
    """(parameters, enabled) of a rule for ``meta``: the policies' scoped values, else the built-in ones."""
    from gate.policy.rules import builtin_rules

    resolve = getattr(policy_set, "resolve", None)
    if resolve is not None:
        resolved = resolve(rule_id, meta)
        return resolved.params, bool(resolved.enabled)
    return builtin_rules()[rule_id].params(), True


def policy_defaults(meta: Metadata, policy_set: Any = None) -> PolicyDefaults:
    """Defaults for a spec with ``meta`` (its tier, owner and labels select the scoped policy entries)."""
    bounds: Any = _resolved("QG403", policy_set, meta)[0]
    samples: Any = _resolved("QG301", policy_set, meta)[0]
    confidence: Any = _resolved("QG405", policy_set, meta)[0]
    stress, stress_on = _resolved("QG404", policy_set, meta)
    rollout, rollout_on = _resolved("QG701", policy_set, meta)
    headroom: Any = _resolved("QG604", policy_set, meta)[0]
    sanctioned: Any = _resolved("QG202", policy_set, meta)[0]
    backends: Any = _resolved("QG207", policy_set, meta)[0]
    tier = meta.tier
    files = getattr(policy_set, "files", ())
    return PolicyDefaults(
        tier=tier,
        max_drop=bounds.max_drop,
        max_relative_increase=bounds.max_relative_increase,
        max_kl=bounds.max_kl,
        max_flip_rate=bounds.max_flip_rate,
        min_samples=samples.min_samples,
        max_samples=samples.max_samples,
        min_confidence=confidence.min_confidence,
        stress_required=stress_on and tier in stress.tiers,  # type: ignore[attr-defined]
        stress_suites=tuple(s.value for s in stress.suites),  # type: ignore[attr-defined]
        rollout_required=rollout_on and tier in rollout.tiers,  # type: ignore[attr-defined]
        min_headroom=headroom.min_headroom,
        sanctioned=tuple(Sanctioned(c.method, c.bits, c.target) for c in sanctioned.sanctioned),
        pins=tuple(backends.pins),
        source=f"policies ({', '.join(files)})" if files else "built-in policy defaults",
    )
