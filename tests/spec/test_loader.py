"""The loader on valid input: plain data, exact positions, hashes, reuse across threads."""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gate.errors import SourceLocation, SpecError
from gate.spec.loader import load_spec
from gate.spec.yaml_source import SourceMap, dotted, parse_yaml

VALID = Path(__file__).parent / "valid"
FULL = VALID / "full.yaml"


def test_full_spec_loads_with_every_section() -> None:
    loaded = load_spec(FULL)
    spec = loaded.spec
    assert spec.metadata.name == "support-assistant"
    assert spec.metadata.tier.value == "critical"
    assert spec.model.kind == "hub"
    assert spec.quantization is not None and spec.quantization.options == {"clip_search": False}
    assert spec.calibration is not None and spec.calibration.collected == dt.date(2026, 10, 1)
    assert spec.quality is not None
    forms = [(m.tolerance_form, m.tolerance, m.higher_is_better) for m in spec.quality.metrics]
    assert forms == [("max_drop", 1.0, True), ("max_relative_increase", 0.05, False)]
    assert loaded.sha256 == hashlib.sha256(FULL.read_bytes()).hexdigest()
    assert loaded.path == FULL


def test_positions_are_one_based_line_and_column_of_keys_and_items() -> None:
    smap = load_spec(FULL).source_map
    assert smap.locate(("apiVersion",)) == SourceLocation(smap.path, 2, 1)
    assert smap.locate(("metadata", "tier")) == SourceLocation(smap.path, 7, 3)
    assert smap.locate(("quality", "metrics", 1)) == SourceLocation(smap.path, 35, 7)
    assert smap.locate(("quality", "metrics", 1, "max_relative_increase")) == SourceLocation(smap.path, 35, 55)
    assert smap.locate(("quality", "stress", 2)) == SourceLocation(smap.path, 36, 37)
    # keys that are not in the file resolve to their closest ancestor
    assert smap.locate(("quantization", "qat_plan")) == SourceLocation(smap.path, 18, 1)
    assert smap.locate(("nothing", "here")) == SourceLocation(smap.path, 1, 1)


def test_values_are_plain_python_types() -> None:
    doc = parse_yaml(b"a: true\nb: 4\nc: 0.5\nd: text\ne: 2026-01-02\nf: ~\ng: [1, {h: no}]\n", "x.yaml")
    assert doc.data == {"a": True, "b": 4, "c": 0.5, "d": "text", "e": dt.date(2026, 1, 2), "f": None, "g": [1, {"h": "no"}]}
    assert [type(doc.data[k]) for k in "abcd"] == [bool, int, float, str]
    assert type(doc.data["g"]) is list and type(doc.data["g"][1]) is dict


def test_dotted_key_paths() -> None:
    assert dotted(()) == ""
    assert dotted(("quality", "metrics", 0, "task")) == "quality.metrics[0].task"
    assert dotted((2, "a")) == "[2].a"


def test_source_map_without_positions() -> None:
    assert SourceMap("f.yaml").locate(("a",)) == SourceLocation("f.yaml", 1, 1)


def test_parser_recovers_after_a_failure() -> None:
    with pytest.raises(SpecError):
        parse_yaml(b"a: [[[[[[\n", "bad.yaml")
    with pytest.raises(SpecError):
        parse_yaml(b"a: " + b"[" * 200 + b"\n", "deep.yaml")
    assert parse_yaml(b"a:\n  b:\n    c: 1\n", "good.yaml").data == {"a": {"b": {"c": 1}}}


def test_loading_from_several_threads() -> None:
    specs = sorted(VALID.glob("*.yaml")) * 20

    def load(path: Path) -> tuple[str, tuple[int, int]]:
        loaded = load_spec(path)
        return loaded.spec.metadata.name, loaded.source_map.positions[("model",)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(load, specs))
    assert results == [load(p) for p in specs]
