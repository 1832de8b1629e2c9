"""Property tests: whatever bytes or YAML arrive, only ``GateError``s escape the loader.

Bounded: a few hundred examples per property, no per-example deadline (the machine is shared),
small inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.errors import GateError, SpecError
from gate.spec.loader import load_spec
from gate.spec.yaml_source import SourceMap, parse_yaml

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)

YAML_ALPHABET = st.sampled_from(
    [*list("abcz019 :-[]{},&*!|>'\"#%@`?~.\n\t\\=+<"), "\n  ", "\n- ", ": ", "---\n", "...\n", "<<: ", "!!str ", "é", "\x00"]
)
yamlish_text = st.lists(YAML_ALPHABET, max_size=60).map("".join)

SPEC_KEYS = {
    "": ["apiVersion", "kind", "metadata", "model", "constraint", "quantization", "calibration", "quality", "rollout", "x"],
    "metadata": ["name", "owner", "tier", "traffic_share", "labels"],
    "model": ["path", "gguf", "hub", "revision", "lockfile", "trust_remote_code"],
    "quantization": ["method", "bits", "group_size", "format", "options", "keep_full_precision"],
    "calibration": ["source", "sha256", "samples", "collected"],
    "quality": ["confidence", "metrics", "stress", "fidelity"],
}
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["awq", "memory", "critical", "quant-gate/v1", "ModelSpec", "2026-01-01", "a" * 64]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@st.composite
def spec_like(draw: st.DrawFn) -> dict[str, Any]:
    """Documents shaped like a spec, with random values in random places."""
    doc: dict[str, Any] = {"apiVersion": "quant-gate/v1", "kind": "ModelSpec"}
    for key in draw(st.lists(st.sampled_from(SPEC_KEYS[""]), max_size=6, unique=True)):
        if key in SPEC_KEYS and draw(st.booleans()):
            section = {k: draw(json_values) for k in draw(st.lists(st.sampled_from(SPEC_KEYS[key]), max_size=4, unique=True))}
            doc[key] = section
        else:
            doc[key] = draw(json_values)
    return doc


def _only_gate_errors(raw: bytes) -> None:
    try:
        doc = parse_yaml(raw, "fuzz.yaml")
    except GateError as exc:
        assert exc.message
        assert exc.location is not None and exc.location.path == "fuzz.yaml"
        return
    assert isinstance(doc.source_map, SourceMap)
    json.dumps(doc.data, default=str)  # plain data only


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_gate_errors(raw: bytes) -> None:
    _only_gate_errors(raw)


@PROPERTY
@given(yamlish_text)
def test_random_yamlish_text_raises_only_gate_errors(text: str) -> None:
    _only_gate_errors(text.encode("utf-8"))


@PROPERTY
@given(st.lists(yamlish_text, min_size=1, max_size=6), st.integers(0, 4))
def test_yamlish_lines_in_a_spec_raise_only_gate_errors(lines: list[str], indent: int) -> None:
    head = "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata:\n"
    body = "".join(" " * indent + line + "\n" for line in lines)
    _only_gate_errors((head + body).encode("utf-8"))


@PROPERTY
@given(spec_like())
def test_spec_shaped_documents_load_or_fail_with_positions(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "spec.yaml"
    # JSON is YAML: random values land in every part of the schema, with real line numbers.
    path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=True).replace("NaN", ".nan").replace("Infinity", ".inf"))
    try:
        loaded = load_spec(path)
    except SpecError as exc:
        errors = getattr(exc, "errors", [exc])
        for error in errors:
            assert error.location is not None and error.location.line is not None, str(error)
            assert "\n" not in error.message, str(error)
        return
    except GateError:
        return
    assert loaded.spec.apiVersion == "quant-gate/v1"


@pytest.mark.parametrize(
    "raw",
    [
        b"a: !!float nope\n",
        b"a: !!int 1.5\n",
        b"a: !!timestamp yesterday\n",
        b"? [a, b]\n: 1\n",
        b"a: 2026-13-45\n",
        b"%YAML 9.9\n---\na: 1\n",
        b"%TAG ! tag:evil.com,2000:\n---\na: !x 1\n",
        b"a: !!set {x}\n",
        b"a: !!binary aGVsbG8=\n",
        b"a: !!omap [{x: 1}]\n",
        b"- &a x\n- *a\n",
        b"a: 1\n...\n",
        b"\xef\xbb\xbf\xef\xbb\xbfa: 1\n",
        b"a: " + b"9" * 5000 + b"\n",
        b"a: 1e99999\n",
    ],
)
def test_known_tricky_inputs_raise_only_gate_errors(raw: bytes) -> None:
    _only_gate_errors(raw)
