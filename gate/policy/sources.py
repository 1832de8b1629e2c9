"""Where policy files come from: a directory in the working tree, or ``policies/`` at a git ref.

Reading at a ref (``gate check --policies-from origin/main``) goes through ``git ls-tree`` and
``git cat-file`` and never touches the working tree, so a pull request cannot weaken the policies
that judge it by editing them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from gate.errors import InputError, SourceLocation
from gate.spec.yaml_source import MAX_YAML_BYTES, display_path

POLICY_SUFFIXES = (".yaml", ".yml")
POLICIES_DIR = "policies"


@dataclass(frozen=True)
class PolicyFile:
    """One policy file's bytes and the name messages show for it."""

    shown: str
    """``policies/org.yaml``, or ``origin/main:policies/org.yaml`` when read at a git ref."""
    raw: bytes


def files_from_dir(directory: Path) -> list[PolicyFile]:
    """The ``*.yaml``/``*.yml`` files directly in ``directory`` (``tests/`` below it holds policy tests)."""
    if not directory.is_dir():
        raise InputError(
            "policy directory not found",
            hint="pass an existing directory with --policies, or omit it to use <repo>/policies",
            location=SourceLocation(display_path(directory)),
        )
    paths = sorted(p for p in directory.iterdir() if p.suffix in POLICY_SUFFIXES and p.is_file())
    return [PolicyFile(shown=display_path(p), raw=_read(p)) for p in paths]


def _read(path: Path) -> bytes:
    where = SourceLocation(display_path(path))
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise InputError(f"file is over the {MAX_YAML_BYTES} byte limit for a policy", location=where)
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", location=where) from None


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise InputError("git is not installed", hint="install git, or drop --policies-from") from None


def files_from_ref(repo_root: Path, ref: str, subdir: str = POLICIES_DIR) -> list[PolicyFile]:
    """The policy files in ``subdir/`` at git ``ref`` (empty when the ref has no such directory)."""
    if ref.startswith("-"):
        raise InputError(f"{ref!r} is not a git ref", hint="pass a branch, tag or commit, e.g. origin/main")
    probe = _git(repo_root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if probe.returncode != 0:
        raise InputError(
            f"git ref {ref!r} not found in {display_path(repo_root)}",
            hint="fetch the base branch first (e.g. `git fetch origin main`) and pass it as origin/main",
        )
    commit = probe.stdout.decode().strip()
    listing = _git(repo_root, "ls-tree", "-z", commit, f"{subdir}/")
    if listing.returncode != 0:
        raise InputError(f"cannot list {subdir}/ at {ref}: {listing.stderr.decode(errors='replace').strip()}")
    files: list[PolicyFile] = []
    records = [r.split("\t", 1) for r in listing.stdout.decode("utf-8", errors="replace").split("\0") if r]
    for meta, path in sorted(records, key=lambda record: record[1]):  # file-name order, as files_from_dir
        _mode, kind, obj = meta.split()
        if kind != "blob" or Path(path).suffix not in POLICY_SUFFIXES:
            continue
        shown = f"{ref}:{path}"
        size = _git(repo_root, "cat-file", "-s", obj)
        if size.returncode == 0 and int(size.stdout.decode().strip() or 0) > MAX_YAML_BYTES:
            raise InputError(
                f"file is over the {MAX_YAML_BYTES} byte limit for a policy", location=SourceLocation(shown)
            )
        blob = _git(repo_root, "cat-file", "blob", obj)
        if blob.returncode != 0:
            raise InputError(f"cannot read {path} at {ref}", location=SourceLocation(shown))
        files.append(PolicyFile(shown=shown, raw=blob.stdout))
    return files
