"""The weight stage: confinement first, then lockfile, file formats and remote code.

``scan_spec_weights`` gathers facts for ``gate check`` and never raises for unsafe content (the
QG5xx rules judge it); ``scan_paths`` backs ``gate scan``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from gate.errors import SourceLocation
from gate.spec.loader import LoadedSpec
from gate.weights import chat_template, confinement, safetensors_check
from gate.weights.base_templates import base_templates, template_text
from gate.weights.files import ScannedFile, check_indexes, scan_file
from gate.weights.interface import (
    ChatTemplateReport,
    FileFormat,
    FileReport,
    FileVerdict,
    LockState,
    LockStatus,
    RemoteCode,
    SourceKind,
    WeightScan,
    WeightsError,
)
from gate.weights.limits import DEFAULT_LIMITS, ScanLimits
from gate.weights.lockfile import model_files, read_lockfile, verify_lockfile
from gate.weights.remote_code import auto_map_entries


def scan_spec_weights(
    loaded: LoadedSpec, repo_root: Path, *, scan_values: bool = False, base_ref: str | None = None,
    limits: ScanLimits = DEFAULT_LIMITS,
) -> WeightScan | None:
    """Facts about the baseline's files for the QG5xx rules.

    Every spec path is checked for confinement BEFORE anything is read; a path that escapes is
    recorded and never opened. The value check (``scan_values``) runs inside the lockfile's sha256
    pass for every file the lockfile pins (one read of the weights), and as its own pass for the
    rest. ``base_ref`` (the PR's base commit) is where changed chat templates are diffed from.
    Raises ``WeightsError`` (an ``InputError``) only for a lockfile that cannot be parsed."""
    spec = loaded.spec
    model = spec.model
    source = SourceKind(model.kind)
    root = repo_root.resolve()
    violations = [v for key, value in confinement.spec_paths(spec) if (v := confinement.check_path(key, value, root))]
    escaped = {v.key for v in violations}
    remote = RemoteCode(trust_remote_code=model.trust_remote_code)

    location: str | None
    model_path: Path | None
    confine_root = root
    if source is SourceKind.hub:
        model_path = _hub_snapshot(model.hub or "", model.revision)
        location = str(model_path) if model_path else None
        if model_path is not None:
            # The repo's cache entry (models--org--name): snapshot files are symlinks to its blobs.
            confine_root = model_path.parents[1].resolve()
    else:
        key = f"model.{source.value}"
        value = model.path if source is SourceKind.path else model.gguf
        location = PurePosixPath(value or "").as_posix()
        model_path = None if key in escaped else root / (value or "")
        if model_path is not None and not os.path.lexists(model_path):
            model_path = None
    fetched = model_path is not None

    files: list[FileReport] = []
    lockfile = root / model.lockfile if model.lockfile and "model.lockfile" not in escaped else None
    scanned: list[tuple[Path, ScannedFile]] = []
    if model_path is not None:
        if model_path.is_dir():
            tree_key = "model.hub" if source is SourceKind.hub else f"model.{source.value}"
            shown_root = location or str(model_path)
            outside = confinement.check_tree(tree_key, model_path, confine_root, shown_root)
            violations.extend(outside)
            skip = {model_path / v.path[len(shown_root) + 1 :] for v in outside}
            paths = [p for p in model_files(model_path, exclude=[lockfile] if lockfile else []) if p not in skip]
        else:
            paths = [model_path]  # a GGUF file; or a FIFO / symlink loop in its place (judged not-regular)
        scanned = _scan_many(paths, lambda p: _shown(p, model_path, location), False, limits)
        remote = _remote_code(scanned, remote)
    observers = {
        path: safetensors_check.NonfiniteObserver(item.header)
        for path, item in scanned
        if scan_values and item.header is not None and item.report.verdict is FileVerdict.ok
    }
    lock = _lock_status(loaded, root, model_path, escaped, observers)
    hashed = _hashed_paths(lock, model_path, observers)
    for path, item in scanned:
        report = item.report
        if path in observers:
            header = item.header
            assert header is not None
            found = observers[path].found if path in hashed else safetensors_check.nonfinite_tensors(path, header)
            report = report.model_copy(update={"nonfinite_tensors": sorted(found)})
        files.append(report)
    if base_ref is not None:
        files = [_with_template_changes(report, path, root, base_ref, limits) for (path, _), report in zip(scanned, files, strict=True)]
    return WeightScan(
        source=source,
        location=location,
        fetched=fetched,
        files=files,
        lock=lock,
        remote_code=remote,
        confinement=violations,
        values_scanned=scan_values and fetched,
    )


def _hashed_paths(lock: LockStatus, model_path: Path | None, observers: dict[Path, safetensors_check.NonfiniteObserver]) -> set[Path]:
    """Files whose bytes the lockfile pass streamed through their observer (pinned, same size)."""
    if model_path is None or lock.state not in (LockState.ok, LockState.mismatch) or not observers:
        return set()
    unread = set(lock.missing) | set(lock.extra) | set(lock.not_regular)
    return {p for p in observers if (p.name if not model_path.is_dir() else p.relative_to(model_path).as_posix()) not in unread}


def _with_template_changes(report: FileReport, path: Path, root: Path, base_ref: str, limits: ScanLimits) -> FileReport:
    if not report.chat_templates:
        return report
    try:
        relative = Path(os.path.realpath(path)).relative_to(root).as_posix()
    except ValueError:
        return report  # a hub snapshot: not in the repository, nothing to diff against
    base = base_templates(root, base_ref, relative, limits)
    if base is None:
        return report
    changed: list[ChatTemplateReport] = []
    for template in report.chat_templates:
        before = base.get((template.source, template.name))
        head = template_text(path, template, limits)
        if before is None:
            changed.append(template.model_copy(update={"changed": True, "diff": chat_template.template_diff("", head or "", f"{relative} {template.name}")}))
        elif head is not None and before != head:
            changed.append(template.model_copy(update={"changed": True, "diff": chat_template.template_diff(before, head, f"{relative} {template.name}")}))
        else:
            changed.append(template)
    return report.model_copy(update={"chat_templates": changed})


def _shown(path: Path, model_path: Path, location: str | None) -> str:
    """A file as reviewers see it: the spec's model path (as written) joined with the file."""
    if location is None:
        return str(path)
    if not model_path.is_dir():
        return location
    return f"{location}/{path.relative_to(model_path).as_posix()}"


def _scan_many(
    paths: Iterable[Path], shown: Callable[[Path], str], scan_values: bool, limits: ScanLimits = DEFAULT_LIMITS
) -> list[tuple[Path, ScannedFile]]:
    scanned: list[tuple[Path, ScannedFile]] = []
    for path in paths:
        try:
            scanned.append((path, scan_file(path, shown(path), scan_values=scan_values, limits=limits)))
        except OSError as exc:
            raise WeightsError(
                f"cannot read weight file: {exc.strerror}", location=SourceLocation(shown(path)),
                hint="check the file's permissions",
            ) from None
    return check_indexes(scanned)


def _remote_code(scanned: list[tuple[Path, ScannedFile]], base: RemoteCode) -> RemoteCode:
    py_files = sorted(s.report.path for _, s in scanned if s.report.format is FileFormat.python)
    auto_map: list[str] = []
    auto_map_files: list[str] = []
    for path, item in scanned:
        if path.suffix == ".json" and "config" in path.name and item.report.format is FileFormat.json:
            entries = auto_map_entries(path)
            if entries is not None:
                auto_map.extend(entries)
                auto_map_files.append(item.report.path)
    return base.model_copy(update={"py_files": py_files, "auto_map": auto_map, "auto_map_files": sorted(auto_map_files)})


def _lock_status(
    loaded: LoadedSpec, root: Path, model_path: Path | None, escaped: set[str],
    observers: dict[Path, safetensors_check.NonfiniteObserver] | None = None,
) -> LockStatus:
    model = loaded.spec.model
    if model.lockfile is None:
        return LockStatus(state=LockState.not_declared, expected_revision=model.revision)
    if "model.lockfile" in escaped:
        return LockStatus(lockfile=model.lockfile, state=LockState.not_verified, expected_revision=model.revision)
    lockfile = root / model.lockfile
    if not lockfile.is_file():
        return LockStatus(lockfile=model.lockfile, state=LockState.missing, expected_revision=model.revision)
    if model_path is None:
        lock = read_lockfile(lockfile, model.lockfile)  # still validates it, and the pinned revision
        status = LockStatus(lockfile=model.lockfile, state=LockState.not_verified, revision=lock.revision, expected_revision=model.revision)
        if model.hub is not None and status.revision_mismatch:
            return status.model_copy(update={"state": LockState.mismatch})
        return status
    return verify_lockfile(
        model_path, lockfile, shown_lockfile=model.lockfile, expected_revision=model.revision, observers=observers
    )


def _hub_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local hub-cache snapshot of ``repo_id`` at ``revision`` (None when not downloaded)."""
    if not revision or "/" not in repo_id or ".." in repo_id:
        return None
    snapshot = hub_snapshot_dir(repo_id, revision)
    return snapshot if snapshot.is_dir() else None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment now, as ``huggingface_hub`` does at
    import: ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE`` (legacy), else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``.

    The hub source downloads into this directory (``cache_dir=``) and the weight stage looks for
    snapshots here, so both always agree, whatever the environment was when the library loaded."""
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    home = os.path.expandvars(os.path.expanduser(home))
    value = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(value)))


def hub_snapshot_dir(repo_id: str, revision: str) -> Path:
    """Where ``huggingface_hub`` puts the snapshot of a model repo at a commit (present or not)."""
    return hub_cache_dir() / ("models--" + repo_id.replace("/", "--")) / "snapshots" / revision


def scan_paths(
    paths: Iterable[Path], *, scan_values: bool = False, limits: ScanLimits = DEFAULT_LIMITS
) -> tuple[list[FileReport], RemoteCode]:
    """``gate scan``: every file under ``paths`` (files or directories), plus remote-code evidence."""
    scanned: list[tuple[Path, ScannedFile]] = []
    for given in paths:
        if not os.path.lexists(given):
            raise WeightsError("path does not exist", hint="pass weight files or model directories", location=SourceLocation(str(given)))
        files = model_files(given) if given.is_dir() else [given]
        scanned.extend(_scan_many(files, lambda p: p.as_posix(), scan_values, limits))
    return [s.report for _, s in scanned], _remote_code(scanned, RemoteCode())
