"""`gate revalidate` re-runs a passing model when the serving runtime it was judged in changed."""

from __future__ import annotations

from pathlib import Path

from gate.registry import Registry
from gate.registry.revalidate import find_candidates
from gate.registry.store import run_row
from gate.result import Decision, ServingRuntime
from gate.serve import installed_serving
from tests.registry.factory import RUNTIME, make_result


def test_a_changed_serving_runtime_version_makes_a_candidate(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    judged = make_result("edge", Decision.passed)
    served = judged.runtime.model_copy(update={"serving": ServingRuntime(name="llama-cpp", version="0.3.20")})
    untouched = make_result("plain", Decision.passed)  # recorded before serving runtimes: never a candidate for it
    registry.import_rows([run_row(judged.model_copy(update={"runtime": served})), run_row(untouched)])
    now = installed_serving("llama-cpp")["serving_version"]  # 0.3.36 with the build, else "not installed"
    candidates = find_candidates(registry, dict(RUNTIME))
    assert [(c.run.model, [(ch.key, ch.before, ch.after) for ch in c.changes]) for c in candidates] == [
        ("edge", [("serving_version", "0.3.20", now)])]


def test_the_same_serving_version_is_no_candidate(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    now = installed_serving("transformers")
    judged = make_result("cpu", Decision.passed)
    served = judged.runtime.model_copy(update={"serving": ServingRuntime(name="transformers",
                                                                         version=now["serving_version"])})
    registry.import_rows([run_row(judged.model_copy(update={"runtime": served}))])
    assert find_candidates(registry, dict(RUNTIME)) == []
