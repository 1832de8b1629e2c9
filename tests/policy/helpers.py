"""Helpers for policy tests: write policy files, judge fragments of the base spec."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gate.plan.catalog import load_catalog
from gate.policy.engine import Evaluation, PolicySet, build_policy_set, run_checks
from gate.policy.facts import Facts
from gate.policy.fragments import deep_merge, loaded_from_data
from gate.policy.sources import files_from_dir

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
TODAY = dt.date(2026, 11, 23)
BASE_SPEC: dict[str, Any] = YAML(typ="safe", pure=True).load((HERE / "base_spec.yaml").read_text(encoding="utf-8"))

HEADER = "apiVersion: quant-gate/v1\nkind: Policy\nmetadata: {name: test}\n"


def write_policies(directory: Path, **files: str) -> Path:
    """Write ``name=body`` policy files (body without the header unless it has apiVersion)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        text = textwrap.dedent(body).lstrip("\n")
        if "apiVersion" not in text:
            text = HEADER + text
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


def policy_set(directory: Path, **files: str) -> PolicySet:
    write_policies(directory, **files)
    return build_policy_set(files_from_dir(directory), source=str(directory))


def judge(ps: PolicySet, fragment: dict[str, Any] | None = None, today: dt.date = TODAY) -> Evaluation:
    loaded = loaded_from_data(deep_merge(BASE_SPEC, fragment or {}), "models/case.yaml")
    facts = Facts(loaded=loaded, catalog=ps.extend_catalog(load_catalog()), today=today, repo_root=REPO_ROOT)
    return run_checks(facts, ps)


def ids(evaluation: Evaluation) -> list[str]:
    return [f.rule_id for f in evaluation.findings]
