"""docs/spec-reference.md documents every ModelSpec field, and its tables are current."""

from __future__ import annotations

from pathlib import Path

from gate.spec.reference import BEGIN, END, EXAMPLES, field_paths, render_field_tables, update_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"


def test_generated_tables_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert update_reference(text) == text, (
        "docs/spec-reference.md is stale: run `python -m gate.spec.reference docs/spec-reference.md`"
    )
    assert render_field_tables().rstrip("\n") in text


def test_every_field_appears_in_the_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    paths = field_paths()
    assert len(paths) > 50
    assert "quality.metrics[].max_relative_increase" in paths
    missing = [p for p in paths if f"| `{p}` |" not in text]
    assert missing == []


def test_every_field_has_exactly_one_example() -> None:
    assert sorted(EXAMPLES) == sorted(field_paths())


def test_doc_explains_tolerance_forms_sources_and_exit_codes() -> None:
    text = DOC.read_text(encoding="utf-8")
    for needle in ("`max_drop`", "`max_relative_drop`", "`max_increase`", "`max_relative_increase`",
                   "| `path` |", "| `gguf` |", "| `hub` |", "| 130 |", "| 3 |", "| 2 |", "| 1 |", "| 0 |"):
        assert needle in text, needle
