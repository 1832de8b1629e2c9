"""The one base of the gate's frozen data types (stage results, the result contract): immutable,
and unknown fields are refused, so a typo in a producer fails loudly instead of being dropped."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
