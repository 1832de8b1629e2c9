"""The hardware catalog (``gate/data/hardware.yaml``), extensible by policy.

Each entry is a deployment target: its kind (gpu/cpu), memory available to a model, compute
capability (NVIDIA) or ISA (CPUs, other accelerators), and the formats with fast kernels there.
The file is validated on load; a policy's ``hardware:`` entries go through the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gate.errors import InputError, SourceLocation
from gate.plan.kernels import FORMATS
from gate.suggest import unknown_choice_message

CATALOG_FILE = Path(__file__).resolve().parent.parent / "data" / "hardware.yaml"
CATALOG_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CC = re.compile(r"^\d+\.\d+$")


class Hardware(BaseModel):
    """One deployment target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["gpu", "cpu"]
    vendor: str
    memory_gb: float = Field(gt=0, description="Memory available to one model, decimal GB.")
    compute_capability: str | None = Field(default=None, description="NVIDIA compute capability, e.g. 8.9.")
    isa: str | None = Field(default=None, description="CPU ISA (avx2, avx512, arm64-neon) or accelerator arch (gfx942).")
    fast_formats: tuple[str, ...] = Field(default=(), description="Formats with fast kernels on this target.")
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a hardware name; use lowercase letters, digits, '.', '_' and '-'")
        return value

    @field_validator("fast_formats")
    @classmethod
    def _formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for fmt in value:
            if fmt not in FORMATS:
                raise ValueError(unknown_choice_message("format", fmt, FORMATS))
        return value

    @model_validator(mode="after")
    def _identity(self) -> Hardware:
        if self.compute_capability is not None and not _CC.match(self.compute_capability):
            raise ValueError(f"compute_capability {self.compute_capability!r} is not MAJOR.MINOR (e.g. '8.9')")
        if self.kind == "gpu" and self.vendor == "nvidia" and self.compute_capability is None:
            raise ValueError("an NVIDIA GPU needs `compute_capability` (e.g. '8.9')")
        if self.kind == "cpu" and self.isa is None:
            raise ValueError("a CPU target needs `isa` (e.g. avx2, avx512, arm64-neon)")
        return self

    def has_fast_kernels(self, fmt: str) -> bool:
        """True when the format, or its kernel family (``gguf`` for ``gguf-q4_k_m``), is listed."""
        from gate.plan.kernels import kernel_names

        return any(name in self.fast_formats for name in kernel_names(fmt))

    @property
    def capability(self) -> tuple[int, int] | None:
        """Compute capability as (major, minor), for comparisons."""
        if self.compute_capability is None:
            return None
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)


@dataclass(frozen=True)
class HardwareCatalog:
    entries: Mapping[str, Hardware]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Hardware:
        """The entry for ``name``; unknown names raise with "did you mean"."""
        try:
            return self.entries[name]
        except KeyError:
            raise InputError(
                unknown_choice_message("hardware", name, self.entries),
                hint="use a catalog name, or add the target to a policy's `hardware:` section",
            ) from None

    def find(self, name: str) -> Hardware | None:
        return self.entries.get(name)

    def extended(self, extra: Mapping[str, Mapping[str, Any]], *, source: str = "policy") -> HardwareCatalog:
        """A catalog with policy-provided entries added (or replacing built-in ones)."""
        merged = dict(self.entries)
        for name, fields in extra.items():
            merged[name] = parse_entry(name, fields, source)
        return HardwareCatalog(merged)


def parse_entry(name: str, fields: Any, source: str) -> Hardware:
    """Validate one catalog entry; errors name the file and the entry."""
    if not isinstance(fields, Mapping):
        raise InputError(f"hardware entry {name!r} must be a mapping", hint="see gate/data/hardware.yaml for the shape",
                         location=SourceLocation(source))
    try:
        return Hardware(name=name, **dict(fields))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "entry"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(f"hardware entry {name!r}: {where}: {msg}",
                         hint="fields: kind, vendor, memory_gb, compute_capability, isa, fast_formats, description",
                         location=SourceLocation(source)) from None
    except TypeError as exc:  # non-string keys
        raise InputError(f"hardware entry {name!r}: {exc}", location=SourceLocation(source)) from None


def parse_catalog(data: Any, source: str) -> HardwareCatalog:
    """A catalog document: ``version: 1`` and a ``hardware:`` mapping of name -> entry."""
    if not isinstance(data, dict) or not isinstance(data.get("hardware"), dict):
        raise InputError("hardware catalog must be a mapping with a `hardware:` section",
                         location=SourceLocation(source))
    if data.get("version") != CATALOG_VERSION:
        raise InputError(f"hardware catalog version {data.get('version')!r} is not supported",
                         hint=f"use `version: {CATALOG_VERSION}`", location=SourceLocation(source))
    return HardwareCatalog({str(n): parse_entry(str(n), f, source) for n, f in data["hardware"].items()})


@cache
def load_catalog() -> HardwareCatalog:
    """The built-in catalog (parsed and validated once per process)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(CATALOG_FILE.read_text(encoding="utf-8"))
    return parse_catalog(data, "gate/data/hardware.yaml")
