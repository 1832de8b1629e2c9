"""The Policy document (``apiVersion: quant-gate/v1``, ``kind: Policy``) under ``policies/``.

A policy configures built-in rules (enable/disable, parameters, severity, audit/enforce mode with
``enforce_after``, scope), adds custom rules as CEL expressions over the spec, sets gate settings
per scope, adds hardware to the catalog and holds waivers. Only the document's shape is checked
here; cross-references (rule ids, parameters, CEL) are checked by ``gate.policy.engine``.
"""

from __future__ import annotations

import datetime as dt
import re
from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gate.spec.models import Metadata, Tier

CUSTOM_ID = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
"""Custom rule ids: uppercase letters and digits (e.g. ORG001); the QG prefix is reserved."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)


class Scope(_Strict):
    """Which specs an entry applies to. Every given criterion must match; an empty list matches all."""

    tiers: list[Tier] = Field(default_factory=list, description="Spec tiers (critical, standard, internal).")
    owners: list[str] = Field(default_factory=list, description="Owner globs, e.g. team-support or team-*.")
    names: list[str] = Field(default_factory=list, description="Model name globs, e.g. support-*.")
    labels: dict[str, str] = Field(default_factory=dict, description="metadata.labels that must be equal.")

    def matches(self, meta: Metadata) -> bool:
        if self.tiers and meta.tier not in self.tiers:
            return False
        if self.owners and not any(fnmatchcase(meta.owner, g) for g in self.owners):
            return False
        if self.names and not any(fnmatchcase(meta.name, g) for g in self.names):
            return False
        return all(meta.labels.get(k) == v for k, v in self.labels.items())

    def describe(self) -> str:
        parts = []
        if self.tiers:
            parts.append("tiers " + ", ".join(t.value for t in self.tiers))
        if self.owners:
            parts.append("owners " + ", ".join(self.owners))
        if self.names:
            parts.append("names " + ", ".join(self.names))
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in self.labels.items()))
        return "; ".join(parts) or "all specs"


class RuleSetting(_Strict):
    """How one built-in rule runs for the specs in ``scope``."""

    rule: str = Field(description="Built-in rule id, e.g. QG203.")
    enabled: bool | None = Field(default=None, description="false turns the rule off for the scope.")
    severity: Literal["deny", "warn"] | None = Field(
        default=None, description="deny blocks, warn only reports; the strictest matching entry wins."
    )
    mode: Literal["audit", "enforce"] | None = Field(
        default=None, description="audit: report as a warning, never block."
    )
    enforce_after: dt.date | None = Field(
        default=None, description="Audit until this date, enforce from it (roll a new rule out gently)."
    )
    scope: Scope = Field(default_factory=Scope, description="Specs this entry applies to; omitted: all specs.")
    params: dict[str, Any] = Field(default_factory=dict, description="Rule parameters (see `gate policy rules`).")


class CustomRule(_Strict):
    """An org rule as a CEL expression over ``spec`` that must be true for a compliant spec."""

    id: str = Field(description="Unique id, uppercase letters and digits, e.g. ORG001 (QG ids are reserved).")
    slug: str | None = Field(default=None, description="Dotted name, e.g. org.owner-prefix.")
    expression: str = Field(description="CEL; `spec` is the spec as JSON data (absent keys omitted), `today` an ISO date.")
    message: str = Field(min_length=1, description="What is wrong when the expression is false.")
    hint: str | None = Field(default=None, description="How to fix it, shown under the message.")
    key: str | None = Field(default=None, description="Dotted spec key the finding points at, e.g. metadata.owner.")
    severity: Literal["deny", "warn"] = Field(default="deny", description="deny blocks, warn only reports.")
    mode: Literal["audit", "enforce"] = Field(default="enforce", description="audit: report as a warning, never block.")
    enforce_after: dt.date | None = Field(default=None, description="Audit until this date, enforce from it.")
    scope: Scope = Field(default_factory=Scope, description="Specs the rule applies to; omitted: all specs.")

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not CUSTOM_ID.match(value):
            raise ValueError(f"{value!r} is not a custom rule id; use 2-16 uppercase letters and digits, e.g. ORG001")
        if value.startswith("QG"):
            raise ValueError(f"{value!r}: ids starting with QG are reserved for built-in rules; use e.g. ORG001")
        return value


class SettingsEntry(_Strict):
    """Gate settings for the specs in ``scope`` (later entries override earlier ones)."""

    scope: Scope = Field(default_factory=Scope, description="Specs these settings apply to; omitted: all specs.")
    inconclusive: Literal["block", "allow"] | None = Field(
        default=None, description="What an inconclusive verdict does (default block: fail closed)."
    )
    clip_search_allowed: bool | None = Field(default=None, description="Whether AWQ clip search may run.")


class Waiver(_Strict):
    """A reviewed exception: ``rule`` does not block ``models`` until ``expires``."""

    rule: str = Field(description="Rule id (built-in or custom) the waiver silences.")
    models: list[str] = Field(min_length=1, description="Model names (globs allowed).")
    reason: str = Field(description="Why the exception is acceptable.")
    owner: str = Field(description="Who answers for it (team or person).")
    expires: dt.date = Field(description="Last day the waiver applies (YYYY-MM-DD).")

    @field_validator("reason", "owner")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty: a waiver states why, and who answers for it")
        return value

    def covers(self, name: str) -> bool:
        return any(fnmatchcase(name, g) for g in self.models)


class PolicyMetadata(_Strict):
    """Names and describes the policy."""

    name: str = Field(min_length=1, description="Policy name, e.g. org-baseline.")
    description: str | None = Field(default=None, description="What the policy is for, in a sentence.")


class PolicyDocument(_Strict):
    """One file under ``policies/``."""

    apiVersion: Literal["quant-gate/v1"] = Field(description="Schema version; only quant-gate/v1.")
    kind: Literal["Policy"] = Field(description="Document type; always Policy.")
    metadata: PolicyMetadata = Field(description="The policy's name and description.")
    rules: list[RuleSetting] = Field(default_factory=list, description="Settings of built-in rules, applied in order.")
    custom_rules: list[CustomRule] = Field(
        default_factory=list, description="Org rules as CEL expressions that must be true for a compliant spec."
    )
    settings: list[SettingsEntry] = Field(
        default_factory=list, description="Gate settings per scope; later entries override earlier ones."
    )
    hardware: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Hardware catalog additions (same fields as gate/data/hardware.yaml)."
    )
    waivers: list[Waiver] = Field(
        default_factory=list, description="Reviewed exceptions: a rule does not block some models until a date."
    )
