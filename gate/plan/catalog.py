"""The hardware catalog (``gate/data/hardware.yaml``), extensible by policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gate.errors import InputError
from gate.suggest import unknown_choice_message

CATALOG_FILE = Path(__file__).resolve().parent.parent / "data" / "hardware.yaml"


class Hardware(BaseModel):
    """One deployment target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["gpu", "cpu"]
    vendor: str
    memory_gb: float = Field(gt=0)
    compute_capability: str | None = None
    isa: str | None = None
    fast_formats: tuple[str, ...] = ()

    def has_fast_kernels(self, fmt: str) -> bool:
        return fmt in self.fast_formats


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
            raise InputError(unknown_choice_message("hardware", name, self.entries)) from None

    def find(self, name: str) -> Hardware | None:
        return self.entries.get(name)

    def extended(self, extra: Mapping[str, Mapping[str, Any]]) -> HardwareCatalog:
        """A catalog with policy-provided entries added (or replacing built-in ones)."""
        merged = dict(self.entries)
        for name, fields in extra.items():
            merged[name] = Hardware(name=name, **dict(fields))
        return HardwareCatalog(merged)


@cache
def load_catalog() -> HardwareCatalog:
    """The built-in catalog (parsed once per process)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe").load(CATALOG_FILE.read_text(encoding="utf-8"))
    entries = {name: Hardware(name=name, **fields) for name, fields in data["hardware"].items()}
    return HardwareCatalog(entries)
