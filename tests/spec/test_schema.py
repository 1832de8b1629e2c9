"""The committed JSON Schema is current, every example spec points editors at it and obeys it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gate.commands.schema import model_spec_schema, render_schema
from gate.quantize.registry import METHODS
from gate.spec.loader import load_spec
from gate.spec.yaml_source import read_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "schema" / "modelspec.schema.json"
HEADER = "# yaml-language-server: $schema=../schema/modelspec.schema.json"
MODEL_SPECS = sorted((REPO_ROOT / "models").glob("*.yaml"))
VALID_SPECS = sorted((Path(__file__).parent / "valid").glob("*.yaml"))


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(), (
        "schema/modelspec.schema.json is stale: run `gate schema > schema/modelspec.schema.json`"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(model_spec_schema())


def test_schema_lists_methods_from_the_registry() -> None:
    quantization = model_spec_schema()["$defs"]["Quantization"]
    assert quantization["properties"]["method"]["enum"] == sorted(METHODS)
    assert quantization["additionalProperties"] is False


def test_there_are_example_specs() -> None:
    assert MODEL_SPECS, "models/ has no example specs"


@pytest.mark.parametrize("spec", MODEL_SPECS, ids=lambda p: p.name)
def test_example_specs_start_with_the_schema_header(spec: Path) -> None:
    first = spec.read_text(encoding="utf-8").splitlines()[0]
    assert first == HEADER, f"{spec.relative_to(REPO_ROOT)}: first line must be `{HEADER}`"


def _as_json(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))  # dates -> ISO strings, as editors see them


@pytest.mark.parametrize("spec", MODEL_SPECS + VALID_SPECS, ids=lambda p: p.name)
def test_valid_specs_load_and_satisfy_the_schema(spec: Path) -> None:
    load_spec(spec)
    jsonschema.validate(_as_json(read_yaml(spec).data), model_spec_schema())


@pytest.mark.parametrize(
    "case",
    ["unknown_key", "bad_enum", "wrong_type", "missing_required", "bad_sha256", "bad_name", "unknown_method", "bad_kind"],
)
def test_schema_rejects_what_the_loader_rejects(case: str) -> None:
    data = _as_json(read_yaml(Path(__file__).parent / "invalid" / f"{case}.yaml").data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, model_spec_schema())
