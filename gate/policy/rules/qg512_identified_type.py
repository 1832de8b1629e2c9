"""QG512: every model file is positively identified as a known-safe type."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gate.policy.facts import Facts
from gate.policy.rule import Rule, Violation
from gate.weights.identify import LOADER_SUFFIXES, suffix_of
from gate.weights.interface import FileVerdict


class InertTypes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_types: list[str] = Field(default_factory=list)
    """Extra inert file types the platform accepts, by suffix (``.png``, ``.onnx``). Never a type a
    loader would unpickle, unwrap or run (``.bin``, ``.pt``, ``.pkl``, ``.npy``, ``.zip``, ``.gz``,
    ``.h5``, ``.py``...): the policy fails to load when it names one."""

    @field_validator("allow_types")
    @classmethod
    def _inert_only(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for item in value:
            suffix = item.lower()
            if not suffix.startswith(".") or "/" in suffix or len(suffix) < 2:
                raise ValueError(f"{item!r} is not a file suffix; write it like '.png'")
            if suffix in LOADER_SUFFIXES:
                raise ValueError(
                    f"{item!r} is a type a loader unpickles, unwraps or runs; it can never be allowed as inert"
                )
            out.append(suffix)
        return out


class IdentifiedType(Rule):
    id = "QG512"
    slug = "weights.identified-type"
    stage = "weights"
    summary = "Every model file is positively identified as a known-safe type (or a type the policy allows as inert)."
    why = (
        "A scanner that lets through what it does not recognise fails open: a renamed pickle, a polyglot or\n"
        "a format the next consumer unpickles passes as 'other'. The gate accepts a file only when a parser\n"
        "identifies all of it (safetensors, GGUF, JSON, text, SentencePiece, a plain numpy array, a chat\n"
        "template). Platform teams may allow more inert types by suffix (`allow_types`), never a\n"
        "pickle-capable, archive or code type."
    )
    example = "# weights/support-assistant/weird.xyz: 200 bytes no parser identifies\n"
    use_instead = (
        "# remove the file, or (for a genuinely inert type) allow it in a policy:\n"
        "rules:\n  - rule: QG512\n    params: {allow_types: [.png]}\n"
    )
    params = InertTypes

    def check(self, facts: Facts, params: BaseModel) -> Iterator[Violation]:
        assert isinstance(params, InertTypes)
        scan = facts.weights
        if scan is None:
            return
        for report in scan.with_verdict(FileVerdict.unknown):
            name = report.member.rsplit("!/", 1)[-1] if report.member else report.path
            if suffix_of(name) in params.allow_types and suffix_of(name) not in LOADER_SUFFIXES:
                continue
            yield Violation(
                f"{report.shown}: not a known-safe file type: {report.reason}",
                path=report.path,
                member=report.member,
                hint="remove the file from the model directory; for an inert type, a policy may allow its suffix (QG512 allow_types)",
                detail={"format": report.format.value, "member": report.member},
            )
