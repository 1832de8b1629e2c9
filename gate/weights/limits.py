"""Bounded work: every limit the scanner enforces, in one place.

A scan must finish in bounded time and memory on any input. Each parser checks these limits
BEFORE doing the work a hostile header asks for; a limit hit raises ``LimitExceeded`` naming the
limit, which the scanner turns into a blocking ``limit-exceeded`` verdict (QG514) -- never an
exception that escapes, never a hang.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ScanLimits:
    """The limits of one scan. Defaults are generous for real models (a 405B checkpoint has ~1.3k
    tensors per shard, a 256k-token vocabulary ~5 MB of strings) and tight for bombs."""

    header_bytes: int = 100_000_000
    """safetensors JSON header (the format's own cap)."""
    tensors: int = 1_000_000
    """Tensors declared by one safetensors or GGUF header."""
    dims: int = 8
    """Dimensions of one safetensors tensor (GGUF's own cap is 4)."""
    value_digits: int = 20
    """Digits of one integer in a header (2**64 has 20)."""
    metadata_keys: int = 1_000_000
    """GGUF metadata keys."""
    value_bytes: int = 16 << 20
    """One string value (GGUF metadata, a chat template source is further capped below)."""
    array_items: int = 1 << 24
    """Items of one GGUF metadata array."""
    nesting: int = 8
    """GGUF nested arrays."""
    json_nesting: int = 64
    """Nesting depth of a JSON file."""
    json_bytes: int = 128 << 20
    """One JSON or text file read to identify it (the largest tokenizer.json files are ~35 MB)."""
    archive_depth: int = 3
    """Containers inside containers (zip in zip in gzip ...)."""
    members: int = 100_000
    """Members of one zip or tar archive."""
    member_bytes: int = 256 << 20
    """Decompressed bytes of one archive member or compressed stream."""
    total_bytes: int = 1 << 30
    """Bytes decompressed or read into memory for one top-level file, all members together."""
    template_bytes: int = 1 << 20
    """One chat template's source."""
    seconds: float = 60.0
    """Wall time for one top-level file (pickle streams: 20 s each, see pickle_scan)."""


DEFAULT_LIMITS = ScanLimits()


class LimitExceeded(Exception):
    """A bounded-work limit was hit; ``limit`` names it (e.g. ``dims``), ``value`` is its setting."""

    def __init__(self, limit: str, value: int | float, what: str) -> None:
        self.limit = limit
        self.value = value
        self.what = what
        super().__init__(f"{what} (over the `{limit}` limit of {value:g})" if isinstance(value, float) else f"{what} (over the `{limit}` limit of {value})")


@dataclass
class Budget:
    """Bytes and time spent on one top-level file, charged as members are decompressed."""

    limits: ScanLimits = DEFAULT_LIMITS
    spent: int = 0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.monotonic() + self.limits.seconds

    def charge(self, n: int, what: str) -> None:
        self.spent += n
        if self.spent > self.limits.total_bytes:
            raise LimitExceeded("total_bytes", self.limits.total_bytes, f"{what}: {self.spent} bytes decompressed in all")
        self.tick(what)

    def tick(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("seconds", self.limits.seconds, f"{what}: the scan of this file took too long")

    def remaining_seconds(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


__all__ = ["DEFAULT_LIMITS", "Budget", "LimitExceeded", "ScanLimits"]
