from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import InputError
from gate.quantize.calibration import load_calibration, read_samples, token_counts, with_token_stats
from gate.spec.loader import load_spec
from tests.quantize.helpers import make_repo, write_calibration

SHIPPED = Path(__file__).resolve().parents[2] / "gate" / "data" / "calibration" / "calibration.jsonl"


def spec_with(tmp_path: Path, calibration: str) -> Path:
    (tmp_path / "model").mkdir(exist_ok=True)
    text = (
        "apiVersion: quant-gate/v1\nkind: ModelSpec\nmetadata: {name: t, owner: o, tier: internal}\n"
        "model:\n  path: model\nquantization: {method: rtn, bits: 4, group_size: 32, format: rtn}\n"
        f"calibration:\n{calibration}"
    )
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "spec.yaml"


def test_selection_is_deterministic_and_stats_are_recorded(tmp_path: Path) -> None:
    digest = write_calibration(tmp_path / "cal.jsonl", [f"sample number {i} " * (i % 5 + 1) for i in range(40)])
    spec = spec_with(tmp_path, f"  source: cal.jsonl\n  sha256: {digest}\n  samples: 10\n  seed: 3\n")
    first = load_calibration(load_spec(spec), tmp_path)
    second = load_calibration(load_spec(spec), tmp_path)
    assert first is not None and second is not None
    assert first.texts == second.texts
    assert len(first.texts) == 10 and len(set(first.texts)) == 10
    assert first.stats.sha256 == digest
    assert first.stats.available == 40
    assert first.stats.chars_min == min(len(t) for t in first.texts)
    other_seed = spec_with(tmp_path, "  source: cal.jsonl\n  samples: 10\n  seed: 4\n")
    third = load_calibration(load_spec(other_seed), tmp_path)
    assert third is not None and third.texts != first.texts


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, "  source: data/none.jsonl\n  samples: 10\n")
    with pytest.raises(InputError) as info:
        load_calibration(load_spec(spec), tmp_path)
    assert str(info.value).endswith(
        "spec.yaml:8:3: calibration.source: data/none.jsonl does not exist\n"
        "  Hint: point calibration.source at a local JSONL or text file in the repository"
    )


def test_hash_mismatch_is_refused(tmp_path: Path) -> None:
    digest = write_calibration(tmp_path / "cal.jsonl", ["a b c"] * 20)
    spec = spec_with(tmp_path, f"  source: cal.jsonl\n  sha256: '{'0' * 64}'\n  samples: 10\n")
    with pytest.raises(InputError) as info:
        load_calibration(load_spec(spec), tmp_path)
    assert info.value.message == f"calibration.sha256: cal.jsonl has sha256 {digest}, the spec records {'0' * 64}"
    assert info.value.hint == "the calibration data changed; review the change, then update calibration.sha256"
    assert info.value.location is not None and info.value.location.line == 9


def test_too_few_samples_is_refused(tmp_path: Path) -> None:
    write_calibration(tmp_path / "cal.jsonl", ["one", "two", "", "three"])
    spec = spec_with(tmp_path, "  source: cal.jsonl\n  samples: 128\n")
    with pytest.raises(InputError) as info:
        load_calibration(load_spec(spec), tmp_path)
    assert info.value.message == "calibration.samples: cal.jsonl has 3 usable samples, the spec asks for 128"
    assert info.value.hint == "add samples to the file, or lower calibration.samples to at most 3"


def test_bad_jsonl_line_points_at_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "cal.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_samples(path, "text", shown="cal.jsonl")
    assert str(info.value) == (
        "cal.jsonl:2:10: invalid JSON: Expecting value\n  Hint: each line of a JSONL file must be one JSON object"
    )
    path.write_text('{"prompt": "ok"}\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_samples(path, "text", shown="cal.jsonl")
    assert str(info.value) == (
        "cal.jsonl:1:1: line has no 'text' field\n"
        "  Hint: set calibration.field to the key holding the text (found: prompt)"
    )


def test_text_files_split_on_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "cal.txt"
    path.write_text("first paragraph\nstill first\n\n\nsecond\n\nthird\n", encoding="utf-8")
    assert read_samples(path, "text", shown="cal.txt") == ["first paragraph\nstill first", "second", "third"]
    with pytest.raises(InputError) as info:
        read_samples(tmp_path / "spec.parquet", "text", shown="x.parquet") if (tmp_path / "spec.parquet").write_text("x") else None
    assert info.value.message == "x.parquet: unsupported calibration file type '.parquet'"


def test_shipped_calibration_set_is_large_and_varied() -> None:
    rows = [json.loads(line) for line in SHIPPED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 256
    assert {r["source"] for r in rows} == {"debian-common-licenses", "synthetic"}
    lengths = sorted(len(r["text"]) for r in rows)
    assert lengths[0] < 150 and lengths[-1] > 1000


def test_token_stats_respect_max_seq_len(tmp_path: Path, tiny_llama_dir: Path) -> None:
    from transformers import AutoTokenizer

    loaded = make_repo(tmp_path, tiny_llama_dir, samples=16, max_seq_len=8)
    cal = load_calibration(loaded, tmp_path)
    assert cal is not None
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    counts = token_counts(tokenizer, cal.texts, 8)
    assert counts == [min(len(tokenizer(t, add_special_tokens=False)["input_ids"]), 8) for t in cal.texts]
    stats = with_token_stats(cal, counts).stats
    assert stats.tokens_max == 8
    assert stats.tokens_min is not None and 1 <= stats.tokens_min <= 8
    assert stats.tokens_total is not None and stats.tokens_total <= 16 * 8
