"""Resolve task names to lm-eval task definitions: shipped suites, repo-local tasks, or standard tasks.

Lookup order for a name: the shipped suites in ``gate/evaluate/tasks/`` (their names are reserved),
then ``<repo>/tasks/*.yaml`` (the team's own tasks); any other name passes straight through to
lm-eval's built-in registry (needs internet on the runner). Local task files are untrusted input,
read and checked by ``gate.evaluate.task_check`` (hardened loader, includes resolved and confined,
no code hooks, plain templates, confined data). Local task YAMLs use ``dataset_path: json`` with
``data_files`` relative to the YAML that declares them; ``materialize`` writes each task, includes
merged and data paths absolute, into a scratch include directory, because lm-eval resolves
relative paths against the working directory, and it makes lm-eval render templates in a sandbox.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import SourceLocation
from gate.evaluate.interface import TaskError
from gate.evaluate.task_check import (
    FILE_HARDENED,
    NO_CODE,
    TEMPLATE_PLAIN,
    TaskIssue,
    TaskOutput,
    TaskRoots,
    TaskScan,
    escape_reason,
    inspect_task,
    peek_task_name,
    shown,
)
from gate.spec.loader import LoadedSpec
from gate.spec.models import StressSuite

SHIPPED_DIR = Path(__file__).resolve().parent / "tasks"
REPO_TASKS_DIR = "tasks"

STRESS_TASKS: dict[StressSuite, str] = {suite: f"qg_{suite.value}" for suite in StressSuite}
"""``quality.stress`` entry -> shipped task ``tasks/qg_<suite>.yaml``. The spec's ``StressSuite`` enum
is the one list (its JSON Schema enum too); a test checks each suite ships and nothing else does."""

PERPLEXITY_TASK = "qg_license_ppl"
"""The shipped perplexity corpus; also the default fidelity text set."""

DEFAULT_STRESS_METRIC = "acc"
DEFAULT_STRESS_MAX_DROP = 5.0
"""Tolerance (points) of a stress suite the spec lists under ``stress`` without its own metric entry."""

STRESS_DEFAULTS: dict[str, tuple[str, float]] = {
    "instructions_gen": ("exact_match", 10.0),
}
"""Stress suites whose default (metric, max_drop) differ from the above. ``instructions_gen`` is
scored by generation (``exact_match``) and kept small (120 items) so it stays cheap; at the
planning flip rate of 10% that resolves a 10-point drop (about 62 paired items needed) but not a
5-point one (about 248)."""


def stress_default(suite: str) -> tuple[str, float]:
    """(metric, max_drop) a stress suite listed without its own ``quality.metrics`` entry is gated at."""
    return STRESS_DEFAULTS.get(suite, (DEFAULT_STRESS_METRIC, DEFAULT_STRESS_MAX_DROP))


@dataclass(frozen=True)
class TaskSource:
    """Where a task's definition and data come from."""

    name: str
    yaml_path: Path | None
    """None: a standard lm-eval task resolved by name (needs its datasets online)."""
    config: dict[str, Any] | None
    """The parsed YAML with ``data_files`` made absolute (None for standard tasks)."""
    data_files: tuple[Path, ...]
    n_items: int | None
    """Items in the evaluation split (None when unknown before lm-eval loads it)."""
    sha256: str
    """Hash of the definition and its data (the baseline cache key uses it)."""
    shipped: bool
    definition_files: tuple[Path, ...] = ()
    """The task YAML and every file it includes (change detection follows them all)."""

    @property
    def local(self) -> bool:
        return self.yaml_path is not None


def _task_index(folder: Path, root: Path) -> tuple[dict[str, Path], list[TaskIssue]]:
    """Task name -> file for the ``*.yaml`` files directly in ``folder``, and the files refused on the way."""
    index: dict[str, Path] = {}
    refused: list[TaskIssue] = []
    if not folder.is_dir():
        return index, refused
    outside = escape_reason(folder.name, folder.parent, root, "the repository root")
    if outside is not None:  # e.g. tasks/ committed as a symlink to a folder elsewhere
        refused.append(TaskIssue(rule=FILE_HARDENED, task=folder.name, path=shown(folder, root),
                                 message=f"the task directory {outside}",
                                 hint="commit the task files themselves under tasks/, not a link to them"))
        return index, refused
    for path in sorted(folder.glob("*.yaml")):
        name, reason = peek_task_name(path, folder)
        if reason is not None:
            refused.append(TaskIssue(rule=FILE_HARDENED, task=path.name, path=shown(path, root), message=reason,
                                     hint="remove the file, or commit it as a plain lm-eval task YAML inside tasks/"))
        elif name and name not in index:
            index[name] = path
    return index, refused


_SHIPPED: dict[str, TaskSource] = {}
"""Shipped suites, inspected once per process (they come with the installed gate)."""


def _shipped_index() -> dict[str, Path]:
    return _task_index(SHIPPED_DIR, SHIPPED_DIR.parents[2])[0]


def repo_task_path(name: str, repo_root: Path) -> Path | None:
    """The repository file that defines task ``name`` (None for shipped suites and standard tasks)."""
    if name in _shipped_index():
        return None
    return _task_index(repo_root / REPO_TASKS_DIR, repo_root)[0].get(name)


def known_local_tasks(repo_root: Path | None) -> list[str]:
    """Names of the repository's tasks and the shipped suites."""
    names = set(_shipped_index())
    if repo_root is not None:
        names.update(_task_index(repo_root / REPO_TASKS_DIR, repo_root)[0])
    return sorted(names)


def task_dirs(repo_root: Path | None) -> list[Path]:
    dirs = [repo_root / REPO_TASKS_DIR] if repo_root is not None else []
    return [*dirs, SHIPPED_DIR]


def repo_roots(repo_root: Path) -> TaskRoots:
    return TaskRoots(tasks=repo_root / REPO_TASKS_DIR, data=repo_root, repo=repo_root)


SHIPPED_ROOTS = TaskRoots(tasks=SHIPPED_DIR, data=SHIPPED_DIR, repo=SHIPPED_DIR.parents[2])


def resolve_task(name: str, repo_root: Path | None, location: SourceLocation | None = None) -> TaskSource:
    """Find ``name`` among the shipped suites, then the repository's tasks, or treat it as a standard lm-eval task.

    Shipped names win (a repository task cannot replace a stress suite). A local task is read and
    checked by ``gate.evaluate.task_check``; any issue but a template one (QG533, which policies
    may vouch for and which lm-eval renders in a sandbox) raises ``TaskError`` at the task file.
    """
    if name in _SHIPPED:
        return _SHIPPED[name]
    shipped = _shipped_index().get(name)
    if shipped is not None:
        _SHIPPED[name] = _load_local(name, shipped, SHIPPED_ROOTS)
        return _SHIPPED[name]
    if repo_root is not None:
        path = _task_index(repo_root / REPO_TASKS_DIR, repo_root)[0].get(name)
        if path is not None:
            return _load_local(name, path, repo_roots(repo_root))
    return TaskSource(name=name, yaml_path=None, config=None, data_files=(), n_items=None,
                      sha256=hashlib.sha256(f"lm-eval:{name}".encode()).hexdigest(), shipped=False)


def _load_local(name: str, path: Path, roots: TaskRoots) -> TaskSource:
    inspected = inspect_task(name, path, roots)
    blocking = [i for i in inspected.issues if i.rule != TEMPLATE_PLAIN]
    if blocking or inspected.config is None:
        first = blocking[0]
        raise TaskError(f"task {name!r}: {first.message} ({first.rule})", hint=first.hint,
                        location=SourceLocation(first.path, first.line, first.col))
    config = inspected.config
    files = inspected.data_files
    for f in files:
        if not f.is_file():
            what = "is not a regular file (a pipe or device)" if f.exists() else "not found"
            raise TaskError(f"task {name!r}: data file {shown(f, roots.data.resolve())} {what}",
                            hint=f"data_files paths are relative to the task file ({shown(path, roots.repo)}); "
                            "regenerate shipped data with `python scripts/make_suites.py`",
                            location=SourceLocation(shown(path, roots.repo)))
    split = config.get("test_split") or config.get("validation_split")
    n_items = _count_items(config, split) if files else None
    digest = hashlib.sha256(_portable(json.dumps(config, sort_keys=True, default=str), roots).encode())
    digest.update(inspected.digest.encode())
    for f in files:
        digest.update(_file_sha256(f))
    return TaskSource(name=name, yaml_path=path, config=config, data_files=tuple(files), n_items=n_items,
                      sha256=digest.hexdigest(), shipped=roots is SHIPPED_ROOTS,
                      definition_files=tuple(inspected.files))


def _portable(text: str, roots: TaskRoots) -> str:
    """The config's resolved data paths made relative to the checkout, so the task's identity (a
    baseline-cache and shared-registry key) is the same on every runner whatever its checkout path;
    the data files' bytes are hashed separately."""
    for root in sorted({str(roots.repo), str(roots.repo.resolve())}, key=len, reverse=True):
        text = text.replace(json.dumps(root + os.sep)[1:-1], "$ROOT/")
    return text


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def spec_task_names(loaded: LoadedSpec) -> list[str]:
    """Task names a spec evaluates: its metrics, its stress suites, its fidelity text task."""
    quality = loaded.spec.quality
    if quality is None:
        return []
    names = [m.task for m in quality.metrics]
    names.extend(STRESS_TASKS[s] for s in quality.stress)
    fid = quality.fidelity
    texts = fid.texts if fid is not None else None
    if texts and "/" not in texts and not texts.endswith((".jsonl", ".json", ".txt")):
        names.append(texts)
    return list(dict.fromkeys(names))


def scan_spec_tasks(loaded: LoadedSpec, repo_root: Path) -> TaskScan | None:
    """The ``gate check`` facts for QG530-QG534: every repository task the spec evaluates, checked.

    Files in ``tasks/`` the loader refuses are reported for every spec (any name could be defined
    by them), and so are ``*.py`` files there when the spec evaluates a repository task.
    """
    folder = repo_root / REPO_TASKS_DIR
    if not folder.is_dir():
        return None
    index, issues = _task_index(folder, repo_root)
    shipped = set(_shipped_index())
    used: list[str] = []
    outputs: list[TaskOutput] = []
    for name, path in index.items():
        if name in shipped:
            issues.append(TaskIssue(
                rule=FILE_HARDENED, task=name, path=shown(path, repo_root), line=1, col=1,
                message=f"task: {name!r} is the name of a shipped suite (shipped suites cannot be replaced)",
                hint="rename the task"))
    for name in spec_task_names(loaded):
        if name in shipped or name not in index:
            continue
        used.append(name)
        inspected = inspect_task(name, index[name], repo_roots(repo_root))
        issues.extend(inspected.issues)
        if inspected.output is not None:
            outputs.append(inspected.output)
    if used:
        for py in sorted(p for p in folder.rglob("*.py")):
            issues.append(TaskIssue(rule=NO_CODE, task=py.name, path=shown(py, repo_root),
                                    message="a Python file in the task directory (task code from a pull request)",
                                    hint=_PY_HINT))
    return TaskScan(tasks=tuple(used), issues=tuple(dict.fromkeys(issues)), outputs=tuple(outputs))


_PY_HINT = ("remove it: lm-eval would import it through `!function`; ship code-bearing tasks with the gate release "
            "the base branch pins")


def _count_items(config: dict[str, Any], split: str | None) -> int | None:
    data_files = config["dataset_kwargs"]["data_files"]
    if isinstance(data_files, str):
        paths = [data_files]
    else:
        chosen = data_files.get(split) if split else None
        if chosen is None:
            return None
        paths = chosen if isinstance(chosen, list) else [chosen]
    total = 0
    for p in paths:
        if not p.endswith((".jsonl", ".json")):
            return None
        with open(p, encoding="utf-8") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def materialize(sources: list[TaskSource], include_dir: Path) -> None:
    """Write each local task's merged YAML (no ``include``, absolute data paths) into ``include_dir``."""
    from ruamel.yaml import YAML

    sandbox_templates()
    include_dir.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    for source in sources:
        if source.config is None:
            continue
        with open(include_dir / f"{source.name}.yaml", "w", encoding="utf-8") as handle:
            yaml.dump(source.config, handle)


def sandbox_templates() -> None:
    """Make lm-eval render task templates in Jinja's immutable sandbox (its own environment is not sandboxed).

    lm-eval 0.4 renders every ``doc_to_*`` field through the module-level ``lm_eval.utils.env``;
    swapping it keeps its settings and filters but refuses ``__globals__``-style escapes.
    """
    import lm_eval.utils as lm_utils
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if isinstance(lm_utils.env, ImmutableSandboxedEnvironment):
        return
    env = ImmutableSandboxedEnvironment(loader=lm_utils.env.loader, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(lm_utils.env.filters)
    lm_utils.env = env
