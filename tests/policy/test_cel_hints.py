"""CEL type-probe hints: an unknown field gets a suggestion from where the expression reads it."""

from __future__ import annotations

import pytest

from gate.errors import SourceLocation, SpecError
from gate.policy.cel import compile_expression


def _hint(expression: str) -> str | None:
    with pytest.raises(SpecError) as err:
        compile_expression(expression, SourceLocation("policies/org.yaml", 3, 5), "custom_rules[0].expression")
    return err.value.hint


@pytest.mark.parametrize(
    ("expression", "hint"),
    [
        # `metric` exists, but under quality.metrics[], not under spec: never suggest the same name back.
        ("spec.metric == 'acc'",
         "`metric` is not a field of `spec`; it is `spec.quality.metrics[].metric`"),
        ("spec.quality.metrics.all(m, m.metrc == 'acc')", "`metrc` is not a spec field; did you mean `metric`?"),
        ("spec.quantization.bitz == 4", "`bitz` is not a spec field; did you mean `bits`?"),
        ("spec.calibration.bits == 4", "`bits` is not a field of `spec.calibration`; it is `spec.quantization.bits`"),
        ("spec.quality.metric[0].task == 't'", "`metric` is not a spec field; did you mean `metrics`?"),
        ("spec.quantization.zzzz == 4", "`zzzz` is not a spec field (`gate schema` lists them)"),
    ],
)
def test_unknown_field_hint(expression: str, hint: str) -> None:
    assert _hint(expression) == hint
