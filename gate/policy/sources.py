"""Where policy files come from: a directory in the working tree, or ``policies/`` at a git ref.

Reading at a ref (``gate check --policies-from origin/main``) goes through ``git ls-tree`` and
``git cat-file`` and never touches the working tree, so a pull request cannot weaken the policies
that judge it by editing them.

A ref is resolved by ``resolve_commit``, which refuses what would let a pull request choose the
base it is judged against: a name that several refs answer to (a tag ``origin/main`` next to the
remote branch), revision expressions, and replace objects (``refs/replace/``; every git call
here runs with ``GIT_NO_REPLACE_OBJECTS=1``). CI passes the base commit's SHA from the event.
"""

from __future__ import annotations

import os
import re
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
    """``policies/org.yaml``, or ``origin/main:policies/org.yaml`` when read at a git ref (a full
    commit SHA is shown by its first 12 digits)."""
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


GIT_ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
"""Environment of every git call that reads the base side: replace objects (``refs/replace/``, which
anyone who can push a ref could add) would silently swap one commit's content for another's."""

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_HEX = re.compile(r"[0-9a-f]{4,63}")
_REF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
_DWIM = ("{}", "refs/{}", "refs/tags/{}", "refs/heads/{}", "refs/remotes/{}", "refs/remotes/{}/HEAD")
"""git's rules for what a short ref name means (``git help revisions``), in its order."""

SHA_HINT = ("pass the base commit's SHA (in GitHub Actions: `github.event.pull_request.base.sha`), "
            "or a full ref name such as refs/remotes/origin/main")


def git_env() -> dict[str, str]:
    return {**os.environ, **GIT_ENV}


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, check=False, timeout=60,
                              env=git_env())
    except FileNotFoundError:
        raise InputError("git is not installed", hint="install git, or drop --policies-from") from None


def resolve_commit(repo_root: Path, ref: str) -> str:
    """The commit SHA ``ref`` names; ``InputError`` when it names none, several, or is an expression.

    Accepted: a full commit SHA, a unique abbreviated SHA that is no ref's name, or a name exactly
    one of git's ref rules matches (``origin/main`` is refused when a tag or branch of that name
    also exists: whoever can push a tag could otherwise pick the base of the diff).
    """
    shown = display_path(repo_root)
    if not _REF_NAME.fullmatch(ref) or ".." in ref or "//" in ref or ref.endswith((".", "/", ".lock")):
        raise InputError(f"{ref!r} is not a plain git ref name or commit SHA",
                         hint="revision expressions (`~`, `^`, `@{...}`, `..`) are not accepted; " + SHA_HINT)
    listing = _git(repo_root, "for-each-ref", "--format=%(refname)")
    if listing.returncode != 0:
        raise InputError(f"cannot list the git refs of {shown}: {listing.stderr.decode(errors='replace').strip()}",
                         hint="run the gate inside a git checkout")
    refs = set(listing.stdout.decode("utf-8", errors="replace").split())
    names = [rule.format(ref) for rule in _DWIM if rule.format(ref) in refs] or (["HEAD"] if ref == "HEAD" else [])
    is_hex = bool(_HEX.fullmatch(ref))
    if len(names) > 1 or (names and is_hex and _peel(repo_root, ref, names) is not None):
        what = ", ".join(names) + (" and an abbreviated commit SHA" if len(names) == 1 else "")
        raise InputError(f"git ref {ref!r} is ambiguous: it names {what}", hint=SHA_HINT)
    target = names[0] if names else ref
    if not names and not is_hex:
        raise InputError(
            f"git ref {ref!r} not found in {shown}",
            hint="fetch the base branch first (actions/checkout with `fetch-depth: 0`, or "
                 f"`git fetch origin {ref.removeprefix('origin/')}`), or " + SHA_HINT,
        )
    probe = _git(repo_root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{target}^{{commit}}")
    if probe.returncode != 0:
        problem = probe.stderr.decode(errors="replace").strip().splitlines()
        detail = f" ({problem[0]})" if problem else ""
        raise InputError(f"git ref {ref!r} is not a commit in {shown}{detail}",
                         hint="fetch the base commit first (actions/checkout with `fetch-depth: 0`), or " + SHA_HINT)
    sha = probe.stdout.decode().strip()
    if is_hex and not names and not _SHA.fullmatch(ref) and not sha.startswith(ref):
        raise InputError(f"git ref {ref!r} is not a commit in {shown}", hint=SHA_HINT)
    return sha


def _peel(repo_root: Path, ref: str, names: list[str]) -> str | None:
    """The object an all-hex ``ref`` abbreviates, when it is not just one of ``names``."""
    probe = _git(repo_root, "rev-parse", "--disambiguate=" + ref)
    found = probe.stdout.decode().split() if probe.returncode == 0 else []
    return found[0] if found else None


def files_from_ref(repo_root: Path, ref: str, subdir: str = POLICIES_DIR) -> list[PolicyFile]:
    """The policy files in ``subdir/`` at git ``ref`` (empty when the ref has no such directory)."""
    commit = resolve_commit(repo_root, ref)
    label = ref[:12] if _SHA.fullmatch(ref) else ref  # a SHA from the event: short, as GitHub shows it
    listing = _git(repo_root, "ls-tree", "-z", commit, f"{subdir}/")
    if listing.returncode != 0:
        raise InputError(f"cannot list {subdir}/ at {ref}: {listing.stderr.decode(errors='replace').strip()}")
    files: list[PolicyFile] = []
    records = [r.split("\t", 1) for r in listing.stdout.decode("utf-8", errors="replace").split("\0") if r]
    for meta, path in sorted(records, key=lambda record: record[1]):  # file-name order, as files_from_dir
        _mode, kind, obj = meta.split()
        if kind != "blob" or Path(path).suffix not in POLICY_SUFFIXES:
            continue
        shown = f"{label}:{path}"
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
