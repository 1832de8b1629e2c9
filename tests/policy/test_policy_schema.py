"""The committed Policy JSON Schema is current, every shipped policy points editors at it and obeys it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gate.cli import main
from gate.commands.schema import POLICY_SCHEMA_ID, policy_schema, render_schema
from gate.errors import SpecError
from gate.policy.loading import build_policy_set
from gate.policy.sources import POLICY_SUFFIXES, files_from_dir
from gate.spec.yaml_source import read_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO_ROOT / "schema" / "policy.schema.json"
MODELSPEC_SCHEMA_FILE = REPO_ROOT / "schema" / "modelspec.schema.json"
POLICY_DIR = REPO_ROOT / "policies"


def _is_policy(path: Path) -> bool:
    data = read_yaml(path).data
    return isinstance(data, dict) and data.get("kind") == "Policy"


POLICY_DOCS = sorted(p for p in POLICY_DIR.rglob("*") if p.suffix in POLICY_SUFFIXES and _is_policy(p))
"""Every Policy document under policies/ (policies/tests/ holds PolicyTest documents, which are not)."""
HEAVY = ("torch", "transformers", "lm_eval", "awq", "torchao", "accelerate", "datasets")


def _header(path: Path) -> str:
    return f"# yaml-language-server: $schema={Path(os.path.relpath(SCHEMA_FILE, path.parent)).as_posix()}"


def _as_json(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str))  # dates -> ISO strings, as editors see them


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(policy_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema("policy"), (
        "schema/policy.schema.json is stale: run `gate schema --kind policy > schema/policy.schema.json`"
    )


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == POLICY_SCHEMA_ID == "https://quant-gate.dev/schema/policy-v1.json"
    assert schema["title"] == "PolicyDocument"
    assert schema["required"] == ["apiVersion", "kind", "metadata"]
    assert schema["properties"]["kind"]["const"] == "Policy"


def test_every_property_has_a_description_from_the_models() -> None:
    schema = policy_schema()
    objects = {"PolicyDocument": schema, **schema["$defs"]}
    undocumented = [
        f"{name}.{key}"
        for name, obj in objects.items()
        for key, prop in obj.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []
    waiver = schema["$defs"]["Waiver"]
    assert waiver["properties"]["expires"]["description"] == "Last day the waiver applies (YYYY-MM-DD)."
    assert waiver["additionalProperties"] is False
    assert schema["properties"]["kind"]["description"] == "Document type; always Policy."


def test_there_are_shipped_policies() -> None:
    assert {"org.yaml", "waivers.yaml"} <= {p.name for p in POLICY_DOCS}


@pytest.mark.parametrize("policy", POLICY_DOCS, ids=lambda p: str(p.relative_to(POLICY_DIR)))
def test_policies_start_with_the_schema_header(policy: Path) -> None:
    header = _header(policy)
    first = policy.read_text(encoding="utf-8").splitlines()[0]
    assert first == header, f"{policy.relative_to(REPO_ROOT)}: first line must be `{header}`"


def test_header_path_is_relative_to_the_file() -> None:
    assert _header(POLICY_DIR / "org.yaml") == "# yaml-language-server: $schema=../schema/policy.schema.json"
    assert _header(POLICY_DIR / "team" / "x.yaml") == "# yaml-language-server: $schema=../../schema/policy.schema.json"


@pytest.mark.parametrize("policy", POLICY_DOCS, ids=lambda p: str(p.relative_to(POLICY_DIR)))
def test_shipped_policies_satisfy_the_schema(policy: Path) -> None:
    assert list(_validator().iter_errors(_as_json(read_yaml(policy).data))) == []


def test_shipped_policies_load_with_the_header() -> None:
    policy_set = build_policy_set(files_from_dir(POLICY_DIR), source="policies/")
    assert len(policy_set.files) == len([p for p in POLICY_DOCS if p.parent == POLICY_DIR])
    [waiver] = policy_set.waivers
    assert waiver.location.line == 9  # the header is line 1: positions count it like any comment
    assert waiver.location.col == 5


HEAD = "# yaml-language-server: $schema=../schema/policy.schema.json\napiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: test}\n"
WAIVER = "waivers:\n  - {rule: QG203, models: [x], reason: r, owner: o, "


@pytest.mark.parametrize(
    ("body", "schema_error", "loader_error"),
    [
        pytest.param(
            "rule:\n  - {rule: QG203, severity: warn}\n",
            ("additionalProperties", [], "Additional properties are not allowed ('rule' was unexpected)"),
            "5:1: rule: unknown key\n  Hint: did you mean `rules`?",
            id="unknown-key",
        ),
        pytest.param(
            WAIVER + "expires: 2027-01-01, expiry: 2027-02-01}\n",
            ("additionalProperties", ["waivers", 0], "Additional properties are not allowed ('expiry' was unexpected)"),
            "6:74: waivers[0].expiry: unknown key\n  Hint: did you mean `expires`?",
            id="unknown-nested-key",
        ),
        pytest.param(
            "waivers:\n  - {rule: QG203, models: smollm2-135m, reason: r, owner: o, expires: 2027-05-31}\n",
            ("type", ["waivers", 0, "models"], "'smollm2-135m' is not of type 'array'"),
            "6:19: waivers[0].models: expected a list (`[a, b]`, or `- item` lines), got a string 'smollm2-135m'\n"
            "  Hint: write `models` as a list, e.g. `[a, b]`",
            id="wrong-type",
        ),
        pytest.param(
            "rules:\n  - {rule: QG203, severity: block}\n",
            ("anyOf", ["rules", 0, "severity"], "'block' is not valid under any of the given schemas"),
            "6:19: rules[0].severity: 'block' is not allowed\n  Hint: use one of: deny, warn",
            id="bad-enum",
        ),
        pytest.param(
            WAIVER + "expires: next-week}\n",
            ("format", ["waivers", 0, "expires"], "'next-week' is not a 'date'"),
            "6:53: waivers[0].expires: expected a date (YYYY-MM-DD), got a string 'next-week'\n"
            "  Hint: write `expires` as YYYY-MM-DD, e.g. 2026-10-01",
            id="bad-date",
        ),
        pytest.param(
            "waivers:\n  - {rule: QG203, models: [x], reason: r, owner: o}\n",
            ("required", ["waivers", 0], "'expires' is a required property"),
            "6:5: waivers[0].expires: required key is missing\n  Hint: add `expires` under `waivers[0]`",
            id="missing-key",
        ),
    ],
)
def test_schema_and_loader_reject_the_same_document(
    tmp_path: Path, body: str, schema_error: tuple[str, list[Any], str], loader_error: str
) -> None:
    (tmp_path / "org.yaml").write_text(HEAD + body, encoding="utf-8")
    data = _as_json(read_yaml(tmp_path / "org.yaml").data)
    assert [(e.validator, list(e.absolute_path), e.message) for e in _validator().iter_errors(data)] == [schema_error]
    with pytest.raises(SpecError) as err:
        build_policy_set(files_from_dir(tmp_path), source=str(tmp_path))
    assert str(err.value) == f"{tmp_path / 'org.yaml'}:{loader_error}"


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_policy_file_points_at_the_policy_schema(tmp_path: Path, text: str) -> None:
    (tmp_path / "org.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        build_policy_set(files_from_dir(tmp_path), source=str(tmp_path))
    assert str(err.value) == (
        f"{tmp_path / 'org.yaml'}: file is empty\n"
        "  Hint: write a policy document (`gate schema --kind policy` prints the schema)"
    )


def test_cli_prints_the_committed_policy_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--kind", "policy"]) == 0
    out = capsys.readouterr().out
    assert out == SCHEMA_FILE.read_text(encoding="utf-8")
    assert json.loads(out)["$id"] == "https://quant-gate.dev/schema/policy-v1.json"


@pytest.mark.parametrize("argv", [["schema"], ["schema", "--kind", "modelspec"]])
def test_modelspec_stays_the_default(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out == MODELSPEC_SCHEMA_FILE.read_text(encoding="utf-8") == render_schema()


def test_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--kind", "spec"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    usage, error = captured.err.splitlines()
    assert usage == "usage: gate schema [-h] [--kind {modelspec,policy}]"
    # the `(choose from ...)` tail is argparse's own wording, which varies across Python versions
    assert error.startswith("gate schema: error: argument --kind: invalid choice: 'spec' (choose from ")


PROBE = """
import json, sys
from gate.cli import main
code = main(["schema", "--kind", "policy"])
print("\\n@@" + json.dumps({"code": code, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
"""


def test_policy_schema_does_not_import_the_ml_stack() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(proc.stdout.rsplit("\n@@", 1)[1])
    assert report == {"code": 0, "heavy": []}, proc.stderr
