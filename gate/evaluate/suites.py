"""Resolve task names to lm-eval task definitions: shipped suites, repo-local tasks, or standard tasks.

Lookup order for a name: ``<repo>/tasks/*.yaml`` (the team's own tasks), then the shipped suites in
``gate/evaluate/tasks/``; any other name passes straight through to lm-eval's built-in registry
(needs internet on the runner). Local task YAMLs use ``dataset_path: json`` with ``data_files``
relative to the YAML's own folder; ``materialize`` rewrites them to absolute paths in a scratch
include directory, because lm-eval resolves relative paths against the working directory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import SourceLocation
from gate.evaluate.interface import TaskError

SHIPPED_DIR = Path(__file__).resolve().parent / "tasks"
REPO_TASKS_DIR = "tasks"

STRESS_TASKS: dict[str, str] = {
    "reasoning": "qg_reasoning",
    "instructions": "qg_instructions",
    "long_context": "qg_long_context",
    "instructions_gen": "qg_instructions_gen",
}
"""``quality.stress`` entry -> shipped task."""

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

    @property
    def local(self) -> bool:
        return self.yaml_path is not None


def _task_index(dirs: list[Path]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            name = _peek_task_name(path)
            if name and name not in index:
                index[name] = path
    return index


def _peek_task_name(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("task:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


def known_local_tasks(repo_root: Path | None) -> list[str]:
    """Names of the repository's tasks and the shipped suites."""
    return sorted(_task_index(task_dirs(repo_root)))


def task_dirs(repo_root: Path | None) -> list[Path]:
    dirs = [repo_root / REPO_TASKS_DIR] if repo_root is not None else []
    return [*dirs, SHIPPED_DIR]


def resolve_task(name: str, repo_root: Path | None, location: SourceLocation | None = None) -> TaskSource:
    """Find ``name`` locally (repo tasks, then shipped) or treat it as a standard lm-eval task."""
    index = _task_index(task_dirs(repo_root))
    path = index.get(name)
    if path is None:
        return TaskSource(name=name, yaml_path=None, config=None, data_files=(), n_items=None,
                          sha256=hashlib.sha256(f"lm-eval:{name}".encode()).hexdigest(), shipped=False)
    return _load_local(name, path, location)


def _load_local(name: str, path: Path, location: SourceLocation | None) -> TaskSource:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    where = location or SourceLocation(str(path))
    try:
        config = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise TaskError(f"task {name!r}: {path} is not valid YAML ({first})",
                        hint="lm-eval's `!function` tags are not supported in local tasks; use built-in filters",
                        location=where) from None
    if not isinstance(config, dict):
        raise TaskError(f"task {name!r}: {path} is not a mapping", hint="write an lm-eval task YAML", location=where)
    files: list[Path] = []
    kwargs = config.get("dataset_kwargs") or {}
    data_files = kwargs.get("data_files")
    if data_files is not None:
        resolved: Any
        if isinstance(data_files, str):
            resolved = str(_data_path(name, path, data_files, where))
            files.append(Path(resolved))
        elif isinstance(data_files, dict):
            resolved = {}
            for split, value in data_files.items():
                values = value if isinstance(value, list) else [value]
                absolute = [_data_path(name, path, str(v), where) for v in values]
                files.extend(absolute)
                resolved[split] = [str(a) for a in absolute] if isinstance(value, list) else str(absolute[0])
        else:
            raise TaskError(f"task {name!r}: dataset_kwargs.data_files must be a path or a mapping of splits",
                            hint="e.g. `data_files: {test: data/my_task.jsonl}`", location=where)
        config = {**config, "dataset_kwargs": {**kwargs, "data_files": resolved}}
    split = config.get("test_split") or config.get("validation_split")
    n_items = _count_items(config, split) if files else None
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for f in files:
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return TaskSource(name=name, yaml_path=path, config=config, data_files=tuple(files), n_items=n_items,
                      sha256=digest.hexdigest(), shipped=path.parent == SHIPPED_DIR)


def _data_path(name: str, yaml_path: Path, value: str, where: SourceLocation) -> Path:
    candidate = Path(value)
    if not candidate.is_absolute():
        candidate = (yaml_path.parent / candidate).resolve()
    if not candidate.is_file():
        raise TaskError(f"task {name!r}: data file {value} not found (looked for {candidate})",
                        hint=f"data_files paths are relative to {yaml_path.parent}; "
                        "regenerate shipped data with `python scripts/make_suites.py`",
                        location=where)
    return candidate


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
    """Write each local task's rewritten YAML (absolute data paths) into ``include_dir``."""
    from ruamel.yaml import YAML

    include_dir.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    for source in sources:
        if source.config is None:
            continue
        with open(include_dir / f"{source.name}.yaml", "w", encoding="utf-8") as handle:
            yaml.dump(source.config, handle)
