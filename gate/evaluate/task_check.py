"""Task YAMLs are untrusted input: read them through the spec loader and check them before anything renders them.

A repository task (``<repo>/tasks/*.yaml``) comes from the pull request, and lm-eval would import
the Python it names (``!function``, ``class:``), render its Jinja templates unsandboxed, follow its
``include:`` anywhere and read any ``data_files``. So every task file, and every file it includes,
is read with ``gate.spec.yaml_source.read_yaml`` (size, depth, node, anchor/alias and tag limits;
regular files only, so ``/dev/zero`` and FIFOs are refused before they are opened) after its path
is confined to the repository's task directory (symlinks resolved). Then:

- QG530 ``task.file-hardened``: a task file the loader refuses, or that is not a mapping, or that
  names a shipped suite (shipped names are reserved: a PR cannot swap a stress suite for an easy one);
- QG531 ``task.include-confined``: ``include:`` absolute, outside the task directory, missing,
  cyclic or nested more than ``MAX_INCLUDE_DEPTH`` levels (includes are resolved here, recursively,
  and the gate hands lm-eval the merged task, so lm-eval never follows an include itself);
- QG532 ``task.no-code``: ``!function``, ``class:``, ``process_*`` hooks, ``*.py`` files in the task
  directory, dataset loading scripts, ``trust_remote_code``, or a metric lm-eval would load as a
  script (``hf_evaluate: true``, a path or a Hub repository as ``metric``);
- QG533 ``task.template-plain``: Jinja in a templated field beyond plain field substitution
  (``{{ question }}``, ``{{ doc.choices[0] }}``); at run time lm-eval renders in a sandbox anyway;
- QG534 ``task.data-confined``: ``data_files`` absolute, escaping the repository through ``..`` or
  a symlink, or not a path.

Shipped suites (``gate/evaluate/tasks/``) come with the installed gate (the release the base
branch pins), so they are trusted and their data is confined to the shipped folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gate.errors import SourceLocation, SpecError
from gate.spec.yaml_source import MAX_YAML_BYTES, KeyPath, SourceMap, read_source_bytes, read_yaml

FILE_HARDENED = "QG530"
INCLUDE_CONFINED = "QG531"
NO_CODE = "QG532"
TEMPLATE_PLAIN = "QG533"
DATA_CONFINED = "QG534"

MAX_INCLUDE_DEPTH = 8
"""Include levels below a task file (lm-eval's own tasks use 2)."""

TEMPLATE_FIELDS = ("doc_to_text", "doc_to_target", "doc_to_choice", "doc_to_image", "doc_to_audio",
                   "doc_to_decontamination_query", "gen_prefix", "description", "fewshot_delimiter",
                   "target_delimiter")
"""Fields lm-eval renders with Jinja (``resolve_field`` / ``apply_template``), also under ``fewshot_config``."""

LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
"""``dataset_path`` values for local data (Hugging Face ``datasets`` packaged builders: no code)."""

_NAME = r"[A-Za-z][A-Za-z0-9_]*"
_PLAIN_EXPR = re.compile(
    r"\{\{-?\s*" + _NAME + r"(?:\." + _NAME + r"|\[(?:\d+|'[^'\\{}%]*'|\"[^\"\\{}%]*\")\])*\s*-?\}\}"
)
_JINJA_OPEN = ("{{", "{%", "{#")


class TaskIssue(BaseModel):
    """One thing wrong with a task file (a finding of rule ``rule`` at ``path:line:col``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str
    """QG530-QG534."""
    task: str
    """The task name the spec uses (or the file name, for a file no task name was read from)."""
    path: str
    """The task file, repository-relative."""
    line: int | None = None
    col: int | None = None
    message: str
    hint: str
    sha256: str | None = None
    """sha256 of the file's bytes (a policy vouches for a template by it; see QG533)."""


class TaskOutput(BaseModel):
    """A repository task's ``output_type``, read statically, and where it is written (QG208 reads it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    output_type: str
    """As the merged task says it (lm-eval's default, ``generate_until``, when no file names one)."""
    path: str
    """The file that sets it (the task file, or the template it includes), repository-relative."""
    line: int | None = None
    col: int | None = None


class TaskScan(BaseModel):
    """What ``gate check`` found in the repository tasks a spec evaluates (facts for QG530-QG534, QG208)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[str, ...] = ()
    """Repository tasks inspected."""
    issues: tuple[TaskIssue, ...] = ()
    outputs: tuple[TaskOutput, ...] = ()
    """Each readable inspected task's output type."""


@dataclass(frozen=True)
class TaskRoots:
    """Where a task's files may live: includes under ``tasks``, data under ``data``."""

    tasks: Path
    data: Path
    repo: Path
    """Paths in issues are shown relative to this."""


@dataclass
class InspectedTask:
    """A task file with its includes merged (``include`` removed), and what is wrong with it."""

    name: str
    path: Path
    config: dict[str, Any] | None
    """None when a file could not be read."""
    data_files: list[Path] = field(default_factory=list)
    issues: list[TaskIssue] = field(default_factory=list)
    digest: str = ""
    """sha256 over every file read (definition, includes) in order."""
    files: list[Path] = field(default_factory=list)
    """The task file and every file it includes, as read."""
    output: TaskOutput | None = None
    """Its ``output_type`` and where it is set (None when the file could not be read)."""


@dataclass
class _File:
    path: Path
    data: dict[str, Any]
    smap: SourceMap
    sha256: str


def shown(path: Path, repo: Path) -> str:
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):
        return str(path)


def escape_reason(value: str, base: Path, root: Path, where: str) -> str | None:
    """Why ``value`` (relative to ``base``) leaves ``root`` (None when it stays inside)."""
    if "\x00" in value:
        return "contains a NUL byte"
    if value.startswith("~") or Path(value).is_absolute():
        return "is an absolute path"
    real_root = root.resolve()
    lexical = Path(os.path.normpath(base.resolve() / value))
    if not _inside(lexical, real_root):
        return f"escapes {where} through '..'"
    try:
        resolved = lexical.resolve(strict=False)
    except (OSError, RuntimeError):
        return "is a symlink loop"
    if not _inside(resolved, real_root):
        return f"resolves through a symlink to {resolved}, outside {where}"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def peek_task_name(path: Path, root: Path) -> tuple[str | None, str | None]:
    """(task name, refusal reason) of a file in a task directory, read within the loader's limits."""
    reason = escape_reason(path.name, path.parent, root, "the task directory")
    if reason is not None:
        return None, reason
    try:
        raw = read_source_bytes(path, what="task", max_bytes=MAX_YAML_BYTES)
    except SpecError as exc:
        return None, exc.message
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("task:"):
            return line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"") or None, None
    return None, None


def inspect_task(name: str, path: Path, roots: TaskRoots) -> InspectedTask:
    """Read ``path`` and its includes through the hardened loader, merge them as lm-eval does, check everything."""
    task = InspectedTask(name=name, path=path, config=None)
    digest = hashlib.sha256()
    files: list[_File] = []
    merged = _load(task, path, roots, files, stack=(), where=None)
    for f in files:
        digest.update(f.sha256.encode())
    task.digest = digest.hexdigest()
    task.files = [f.path for f in files]
    for f in files:
        _check_code(task, f, roots)
        _check_templates(task, f, roots)
    if merged is None:
        return task
    merged_data, origins = merged
    merged_data.pop("include", None)
    task.output = _output(name, merged_data, origins, path, roots)
    task.config = _confine_data(task, merged_data, origins, roots)
    return task


DEFAULT_OUTPUT_TYPE = "generate_until"
"""lm-eval's ``TaskConfig.output_type`` when a task names none."""


def _output(name: str, merged: dict[str, Any], origins: dict[str, _File], path: Path, roots: TaskRoots) -> TaskOutput:
    owner = origins.get("output_type")
    if owner is None:
        return TaskOutput(task=name, output_type=DEFAULT_OUTPUT_TYPE, path=shown(path, roots.repo), line=1, col=1)
    loc = owner.smap.locate(("output_type",))
    return TaskOutput(task=name, output_type=str(merged.get("output_type")), path=shown(owner.path, roots.repo),
                      line=loc.line, col=loc.col)


def _issue(task: InspectedTask, rule: str, path: Path, roots: TaskRoots, message: str, hint: str,
           where: SourceLocation | None = None, sha256: str | None = None) -> None:
    task.issues.append(TaskIssue(rule=rule, task=task.name, path=shown(path, roots.repo),
                                 line=where.line if where else None, col=where.col if where else None,
                                 message=message, hint=hint, sha256=sha256))


def _load(task: InspectedTask, path: Path, roots: TaskRoots, files: list[_File], *, stack: tuple[Path, ...],
          where: tuple[Path, SourceLocation] | None) -> tuple[dict[str, Any], dict[str, _File]] | None:
    """The file's data with its includes merged under it, and which file each top-level key came from."""
    try:
        doc = read_yaml(path, what="task")
    except SpecError as exc:
        loc = exc.location
        if "found `!function`" in exc.message:
            _issue(task, NO_CODE, path, roots, "`!function` imports Python from the pull request",
                   "use lm-eval's built-in filters and metrics; code-bearing tasks ship with the gate release "
                   "the base branch pins", loc)
        else:
            _issue(task, FILE_HARDENED, path, roots, exc.message,
                   exc.hint or "write a plain lm-eval task YAML", loc)
        return None
    sha = hashlib.sha256(doc.raw).hexdigest()
    if not isinstance(doc.data, dict):
        _issue(task, FILE_HARDENED, path, roots, "a task file must be a mapping", "write an lm-eval task YAML",
               doc.source_map.locate(()), sha)
        return None
    record = _File(path=path, data=doc.data, smap=doc.source_map, sha256=sha)
    files.append(record)
    merged: dict[str, Any] = {}
    origins: dict[str, _File] = {}
    includes = doc.data.get("include")
    if includes is not None:
        values = includes if isinstance(includes, list) else [includes]
        for index, value in enumerate(values):
            key = ("include", index) if isinstance(includes, list) else ("include",)
            loc = doc.source_map.locate(key)
            target = _include_target(task, record, value, loc, roots, stack)
            if target is None:
                continue
            child = _load(task, target, roots, files, stack=(*stack, path.resolve()), where=(path, loc))
            if child is None:
                continue
            child_data, child_origins = child
            child_data.pop("task_list", None)  # lm-eval: an include's task_list defines its own tasks only
            child_data.pop("include", None)
            merged.update(child_data)
            origins.update({k: child_origins.get(k, record) for k in child_data})
    for key in doc.data:
        if key != "include":
            origins[key] = record
    merged.update(doc.data)
    return merged, origins


def _include_target(task: InspectedTask, record: _File, value: Any, loc: SourceLocation, roots: TaskRoots,
                    stack: tuple[Path, ...]) -> Path | None:
    hint = "include a task file by a path relative to this file, inside the repository's task directory"
    if not isinstance(value, str) or not value:
        _issue(task, INCLUDE_CONFINED, record.path, roots, f"include: {value!r} is not a file path", hint, loc, record.sha256)
        return None
    where = f"the task directory {shown(roots.tasks, roots.repo)}/"
    reason = escape_reason(value, record.path.parent, roots.tasks, where)
    if reason is not None:
        _issue(task, INCLUDE_CONFINED, record.path, roots, f"include: {value!r} {reason}", hint, loc, record.sha256)
        return None
    target = Path(os.path.normpath(record.path.parent / value))
    if target.resolve() in stack or target.resolve() == record.path.resolve():
        _issue(task, INCLUDE_CONFINED, record.path, roots, f"include: {value!r} includes itself (a cycle)",
               "remove the cycle", loc, record.sha256)
        return None
    if len(stack) + 1 > MAX_INCLUDE_DEPTH:
        _issue(task, INCLUDE_CONFINED, record.path, roots,
               f"include: {value!r} nests includes more than {MAX_INCLUDE_DEPTH} levels deep",
               "flatten the includes", loc, record.sha256)
        return None
    return target


_CODE_HINT = ("remove it: task code from a pull request would run on the GPU runner; use lm-eval's built-in "
              "filters and metrics, or ship the task with the gate release the base branch pins")


def _check_code(task: InspectedTask, f: _File, roots: TaskRoots) -> None:
    data = f.data
    for key in data:
        if key == "class" or key.startswith("process_"):
            _issue(task, NO_CODE, f.path, roots, f"{key}: a code hook runs Python from the pull request",
                   _CODE_HINT, f.smap.locate((key,)), f.sha256)
    dataset = data.get("dataset_path")
    if isinstance(dataset, str) and dataset not in LOCAL_BUILDERS and (
            dataset.endswith(".py") or dataset.startswith((".", "/", "~")) or (f.path.parent / dataset).exists()):
        _issue(task, NO_CODE, f.path, roots,
               f"dataset_path: {dataset!r} is a local dataset script or folder, which can run code",
               f"use `dataset_path: json` (or {', '.join(LOCAL_BUILDERS[1:])}) with `dataset_kwargs.data_files`",
               f.smap.locate(("dataset_path",)), f.sha256)
    if data.get("unsafe_code") not in (None, False):
        _issue(task, NO_CODE, f.path, roots, "unsafe_code: runs the code the model generates on the runner",
               "evaluate code generation in a sandboxed service, not in the gate", f.smap.locate(("unsafe_code",)),
               f.sha256)
    metrics = data.get("metric_list")
    for index, entry in enumerate(metrics if isinstance(metrics, list) else []):
        if not isinstance(entry, dict):
            continue
        metric = entry.get("metric")
        if entry.get("hf_evaluate") is True:
            _issue(task, NO_CODE, f.path, roots,
                   f"metric_list[{index}].hf_evaluate: loads and runs a metric script from the Hugging Face Hub",
                   "use a metric lm-eval registers (acc, exact_match, ...)",
                   f.smap.locate(("metric_list", index, "hf_evaluate")), f.sha256)
        elif isinstance(metric, str) and (any(c in metric for c in "/\\") or metric.startswith((".", "~"))
                                          or metric.endswith(".py")):
            _issue(task, NO_CODE, f.path, roots,
                   f"metric_list[{index}].metric: {metric!r} is a path or a Hub repository, whose script lm-eval "
                   "would load and run", "use a metric lm-eval registers (acc, exact_match, ...)",
                   f.smap.locate(("metric_list", index, "metric")), f.sha256)
    kwargs = data.get("dataset_kwargs")
    if isinstance(kwargs, dict) and kwargs.get("trust_remote_code"):
        _issue(task, NO_CODE, f.path, roots, "dataset_kwargs.trust_remote_code: runs the dataset's own code",
               "remove `trust_remote_code`", f.smap.locate(("dataset_kwargs", "trust_remote_code")), f.sha256)


def plain_template(text: str) -> bool:
    """True when ``text`` uses Jinja only for plain field substitution (``{{ field }}``, ``{{ a.b[0] }}``)."""
    if not any(mark in text for mark in _JINJA_OPEN):
        return True
    rest = _PLAIN_EXPR.sub("", text)
    return not any(mark in rest for mark in _JINJA_OPEN)


def _check_templates(task: InspectedTask, f: _File, roots: TaskRoots) -> None:
    sections: list[tuple[KeyPath, Any]] = [((), f.data)]
    if isinstance(f.data.get("fewshot_config"), dict):
        sections.append((("fewshot_config",), f.data["fewshot_config"]))
    for prefix, section in sections:
        for key in TEMPLATE_FIELDS:
            value = section.get(key)
            items: list[tuple[KeyPath, Any]] = [((*prefix, key), value)] if not isinstance(value, list) else [
                ((*prefix, key, i), v) for i, v in enumerate(value)]
            for key_path, item in items:
                if isinstance(item, str) and not plain_template(item):
                    dotted = ".".join(str(p) for p in key_path[:len(prefix) + 1])
                    _issue(task, TEMPLATE_PLAIN, f.path, roots,
                           f"{dotted}: Jinja beyond plain field substitution ({_snippet(item)})",
                           "use `{{ field }}` substitutions only and precompute the text in the data file, or have "
                           "the platform team vouch for this file by sha256 in a base-branch policy (QG533 `trusted`)",
                           f.smap.locate(key_path), f.sha256)
    if "use_prompt" in f.data:
        _issue(task, TEMPLATE_PLAIN, f.path, roots, "use_prompt: renders Jinja templates from a prompt library",
               "write the prompt as `doc_to_text: \"{{ field }}\"`", f.smap.locate(("use_prompt",)), f.sha256)


def _snippet(text: str) -> str:
    start = min(i for i in (text.find(m) for m in _JINJA_OPEN) if i >= 0)
    part = text[start:start + 40]
    return f"`{part}`" + ("..." if len(text) > start + 40 else "")


def _confine_data(task: InspectedTask, merged: dict[str, Any], origins: dict[str, _File],
                  roots: TaskRoots) -> dict[str, Any]:
    """``merged`` with each ``data_files`` entry made absolute, relative to the file that declares it."""
    kwargs = merged.get("dataset_kwargs")
    if not isinstance(kwargs, dict) or kwargs.get("data_files") is None:
        return merged
    owner = origins.get("dataset_kwargs")
    assert owner is not None
    data_files = kwargs["data_files"]
    hint = "give data_files relative to the task file, inside the repository (no absolute paths, `..` or outside symlinks)"

    def one(value: Any, key_path: KeyPath) -> str | None:
        loc = owner.smap.locate(key_path)
        if not isinstance(value, str) or not value:
            _issue(task, DATA_CONFINED, owner.path, roots, f"{_dotted(key_path)}: {value!r} is not a file path", hint,
                   loc, owner.sha256)
            return None
        reason = escape_reason(value, owner.path.parent, roots.data, _data_where(roots))
        if reason is not None:
            _issue(task, DATA_CONFINED, owner.path, roots, f"{_dotted(key_path)}: {value!r} {reason}", hint, loc,
                   owner.sha256)
            return None
        absolute = Path(os.path.normpath(owner.path.parent.resolve() / value))
        task.data_files.append(absolute)
        return str(absolute)

    base: KeyPath = ("dataset_kwargs", "data_files")
    resolved: Any
    if isinstance(data_files, dict):
        resolved = {}
        for split, value in data_files.items():
            if isinstance(value, list):
                resolved[split] = [one(v, (*base, split, i)) for i, v in enumerate(value)]
            else:
                resolved[split] = one(value, (*base, split))
    elif isinstance(data_files, list):
        resolved = [one(v, (*base, i)) for i, v in enumerate(data_files)]
    else:
        resolved = one(data_files, base)
    return {**merged, "dataset_kwargs": {**kwargs, "data_files": resolved}}


def _data_where(roots: TaskRoots) -> str:
    return "the repository root" if roots.data == roots.repo else "the shipped task folder"


def _dotted(key_path: KeyPath) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(key_path))
