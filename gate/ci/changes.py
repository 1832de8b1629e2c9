"""Change detection: which specs a change touches (``gate plan --changed-since REF``).

The diff is ``git diff --name-status -M <ref>...HEAD`` (against the merge base, as GitHub shows a
pull request). A spec is selected when the spec itself changed, or when a file it references
changed: its weights directory or GGUF file, lockfile, calibration data, fidelity texts, or the
definition or data of a task it evaluates (``tasks/`` in the repository, or the shipped suites).

A policy change selects the specs it can affect (``gate.ci.policy_changes``): the policies at the
merge base and in the working tree are both loaded, and a spec is selected when the entries that
apply to it differ (rules, custom rules and settings entries whose scope matches it, waivers
covering its name, the policy hardware entry of its target), with a reason naming the file and
the entry. Files under ``policies/`` the loader never reads (``policies/tests/``) select nothing.
When either side's policies do not load, every spec is selected. Renames count for both paths;
deleted specs are reported (never run) so the required check still says something about them.
"""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gate.errors import GateError, InputError
from gate.policy.sources import POLICIES_DIR, git_env, resolve_commit
from gate.spec.loader import SPEC_SUFFIXES, LoadedSpec

DEFAULT_SPECS_DIR = "models"


@dataclass(frozen=True)
class FileChange:
    """One line of ``git diff --name-status``."""

    status: str
    """A added, M modified, D deleted, R renamed, C copied, T type changed."""
    path: str
    """The path after the change (for D: the deleted path)."""
    old_path: str | None = None
    """The path before a rename or copy."""

    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.old_path is None else (self.old_path, self.path)


@dataclass(frozen=True)
class SelectedSpec:
    path: str
    """Repository-relative spec path (POSIX)."""
    reasons: tuple[str, ...]
    """Why the change selects it, e.g. ``spec edited``, ``calibration data changed: data/x.jsonl``."""


@dataclass(frozen=True)
class RemovedSpec:
    path: str
    renamed_to: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """The specs a change touches."""

    ref: str
    changes: tuple[FileChange, ...]
    selected: tuple[SelectedSpec, ...]
    deleted: tuple[RemovedSpec, ...] = ()
    unreadable: tuple[str, ...] = field(default=())
    """Unchanged specs that could not be loaded, so their references could not be followed."""
    notes: tuple[str, ...] = field(default=())
    """Changes that select no spec, and why (e.g. a policy test, or a comment in a policy)."""


def git(repo_root: Path, *args: str) -> str:
    """Run git in ``repo_root``; failures become ``InputError`` with git's own message."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_root), *args], capture_output=True, text=True, check=False, timeout=120,
            env=git_env(),
        )
    except FileNotFoundError:
        raise InputError("git is not installed", hint="install git; change detection reads the git history") from None
    if proc.returncode != 0:
        raise GitError(args, proc.stderr.strip())
    return proc.stdout


class GitError(InputError):
    def __init__(self, args: tuple[str, ...], stderr: str) -> None:
        first = stderr.splitlines()[0] if stderr else "failed"
        super().__init__(f"git {' '.join(args)}: {first}")
        self.stderr = stderr


def changed_files(repo_root: Path, ref: str) -> list[FileChange]:
    """Files changed between the merge base of ``ref`` and ``HEAD``, renames detected.

    ``ref`` is resolved to one commit first (``gate.policy.sources.resolve_commit``: an ambiguous
    name is refused). No external diff driver or textconv runs, whatever ``.gitattributes`` says.
    """
    commit = resolve_commit(repo_root, ref)
    try:
        git(repo_root, "merge-base", commit, "HEAD")
    except GitError:
        raise InputError(
            f"{ref!r} and HEAD have no common history (merge base)",
            hint="the clone is probably shallow: use actions/checkout with `fetch-depth: 0`",
        ) from None
    out = git(repo_root, "diff", "--name-status", "-M", "-z", "--no-color", "--no-ext-diff", "--no-textconv",
              f"{commit}...HEAD", "--")
    return parse_name_status(out)


def parse_name_status(out: str) -> list[FileChange]:
    """Parse ``git diff --name-status -z`` output (NUL-separated; renames carry two paths)."""
    fields = out.split("\0")
    changes: list[FileChange] = []
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        kind = status[0]
        if kind in ("R", "C"):
            changes.append(FileChange(status=kind, old_path=fields[i + 1], path=fields[i + 2]))
            i += 3
        else:
            changes.append(FileChange(status=kind, path=fields[i + 1]))
            i += 2
    return changes


def is_spec_path(path: str, specs_dir: str) -> bool:
    prefix = specs_dir.rstrip("/") + "/"
    return path.startswith(prefix) and path.endswith(SPEC_SUFFIXES)


def spec_paths(repo_root: Path, specs_dir: str) -> list[str]:
    """Every spec file under ``specs_dir`` in the working tree (POSIX, repo-relative, sorted)."""
    base = repo_root / specs_dir
    if not base.is_dir():
        return []
    return sorted(
        p.relative_to(repo_root).as_posix() for p in base.rglob("*") if p.is_file() and p.suffix in SPEC_SUFFIXES
    )


def _norm(path: str) -> str:
    normal = posixpath.normpath(path.replace("\\", "/"))
    return "" if normal == "." else normal


def referenced_paths(loaded: LoadedSpec, repo_root: Path,
                     task_cache: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Repository paths a spec depends on -> what they are (directories match every file inside)."""
    cache = task_cache if task_cache is not None else {}
    spec = loaded.spec
    refs: dict[str, str] = {}

    def add(value: str | None, what: str) -> None:
        if value and "://" not in value:
            refs[_norm(value)] = what

    add(spec.model.path, "weights changed")
    add(spec.model.gguf, "weights changed")
    add(spec.model.lockfile, "lockfile changed")
    if spec.calibration is not None:
        add(spec.calibration.source, "calibration data changed")
    quality = spec.quality
    tasks: set[str] = set()
    if quality is not None:
        tasks.update(m.task for m in quality.metrics)
        from gate.evaluate.suites import PERPLEXITY_TASK, STRESS_TASKS

        tasks.update(STRESS_TASKS.get(s, s.value) for s in quality.stress)
        if quality.fidelity is not None:
            texts = quality.fidelity.texts
            if texts and ("/" in texts or texts.endswith((".jsonl", ".txt", ".json"))):
                add(texts, "fidelity texts changed")
            else:
                tasks.add(texts or PERPLEXITY_TASK)
    for task in sorted(tasks):
        if task not in cache:
            cache[task] = task_files(task, repo_root)
        for path in cache[task]:
            refs.setdefault(path, f"task {task} changed")
    return refs


def task_files(task: str, repo_root: Path) -> list[str]:
    """The repository files (definition, includes and data) of a local or shipped task; [] for standard tasks.

    A repository task that does not load (refused by the task checks) depends on all of ``tasks/``:
    its spec is selected by any change there, so ``gate check`` runs and reports why."""
    from gate.evaluate.suites import REPO_TASKS_DIR, repo_task_path, resolve_task

    try:
        source = resolve_task(task, repo_root)
    except GateError:
        return [REPO_TASKS_DIR] if repo_task_path(task, repo_root) is not None else []
    root = repo_root.resolve()
    out: list[str] = []
    for path in (*(source.definition_files or (source.yaml_path,)), *source.data_files):
        if path is None:
            continue
        try:
            out.append(path.resolve().relative_to(root).as_posix())
        except ValueError:
            continue  # shipped with the installed gate, outside this repository
    return out


def _touches(ref: str, changed: str) -> bool:
    return changed == ref or changed.startswith(ref.rstrip("/") + "/")


def select_specs(repo_root: Path, ref: str, *, specs_dir: str = DEFAULT_SPECS_DIR,
                 changes: Iterable[FileChange] | None = None) -> ChangeSet:
    """The specs the change from ``ref`` to ``HEAD`` touches (see module docs)."""
    from gate.ci.policy_changes import analyse
    from gate.spec.loader import load_spec

    if changes is None:
        base = resolve_commit(repo_root, ref)
        diff = tuple(changed_files(repo_root, ref))
    else:
        base, diff = ref, tuple(changes)
    reasons: dict[str, list[str]] = {}
    deleted: list[RemovedSpec] = []

    def select(path: str, why: str) -> None:
        bucket = reasons.setdefault(path, [])
        if why not in bucket:
            bucket.append(why)

    current = spec_paths(repo_root, specs_dir)
    current_set = set(current)
    for change in diff:
        if change.status == "D" and is_spec_path(change.path, specs_dir):
            deleted.append(RemovedSpec(path=change.path))
        elif change.status == "R" and change.old_path and is_spec_path(change.old_path, specs_dir):
            if is_spec_path(change.path, specs_dir):
                select(change.path, f"spec renamed from {change.old_path}")
            else:
                deleted.append(RemovedSpec(path=change.old_path, renamed_to=change.path))
        elif is_spec_path(change.path, specs_dir) and change.path in current_set:
            select(change.path, {"A": "spec added", "C": f"spec copied from {change.old_path}"}.get(
                change.status, "spec edited"))

    loaded_specs: dict[str, LoadedSpec | None] = {}

    def load(path: str) -> LoadedSpec | None:
        if path not in loaded_specs:
            try:
                loaded_specs[path] = load_spec(repo_root / path)
            except GateError:
                loaded_specs[path] = None
        return loaded_specs[path]

    changed_paths = [p for c in diff for p in c.paths()]
    policy = analyse(repo_root, base, changed_paths, shown_ref=ref)
    if policy.select_all is not None:
        for path in current:
            select(path, policy.select_all)
    elif policy.changed:
        for path in current:
            loaded = load(path)
            for why in policy.reasons_for(loaded) if loaded is not None else ():
                select(path, why)

    if all(is_spec_path(p, specs_dir) or _touches(POLICIES_DIR, p) for p in changed_paths):
        changed_paths = []  # only specs and policies changed: no reference to follow
    task_cache: dict[str, list[str]] = {}
    for path in current if changed_paths else []:
        loaded = load(path)
        if loaded is None:
            continue
        for ref_path, why in referenced_paths(loaded, repo_root, task_cache).items():
            hit = next((p for p in changed_paths if _touches(ref_path, p)), None)
            if hit is not None:
                select(path, f"{why}: {hit}")
    unreadable = tuple(p for p in current if loaded_specs.get(p, False) is None and p not in reasons)
    selected = tuple(SelectedSpec(path=p, reasons=tuple(reasons[p])) for p in sorted(reasons))
    return ChangeSet(ref=ref, changes=diff, selected=selected, deleted=tuple(deleted), unreadable=unreadable,
                     notes=tuple(policy.notes()))
