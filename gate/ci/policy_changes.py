"""Which specs a policy change can affect (``gate plan --changed-since``; see ``gate.ci.changes``).

Only the files the policy loader reads count: ``policies/*.yaml`` and ``policies/*.yml``, directly
in ``policies/`` (``gate.policy.sources``). Policy tests under ``policies/tests/`` and any other
file there are never loaded, so a change to them affects no spec.

When a loaded file changed, the policy set is loaded twice: from the working tree (as every gate
command does) and from ``policies/`` at the merge base, read with ``git ls-tree`` and
``git cat-file`` (never checked out). Each spec is then compared under both sets. Its *policy
view* is everything the engine and the later stages read from the policies for it:

- the ``rules`` entries whose scope matches its metadata, per rule id, in order, with their file
  (``PolicySet.resolve`` merges them in order; QG002 compares the files that set a severity; the
  resolved QG403/QG511 feed the settings and the weight scan);
- the ``custom_rules`` whose scope matches, with their file;
- the ``settings`` entries whose scope matches, in order (``PolicySet.settings_for``);
- the ``waivers`` whose ``models`` globs match its name, in order, with their file (the waiver
  checks QG003-QG005 come from exactly these waivers and the spec's own findings);
- the policies' ``hardware`` entry for its ``constraint.target.hardware`` (the plan stage, the
  kernel rules, QG102 and the runner labels read only that entry).

Everything in a view is attached to one spec, and nothing else in a policy set reaches a spec
(the engine checks QG002-QG005 included), so a spec is selected exactly when its two views
differ. Not part of a view, because no verdict depends on them: source positions (where findings
and QG002's message point), the policy's ``metadata``, the order of entries of different rules,
the file a hardware or settings entry is written in, and the rest of the hardware catalog (only
QG102's "did you mean" text reads it). So comment-only and metadata-only edits select nothing.

Fail safe, every spec is selected when: the policies at either side do not load (or cannot be
read from git), or a policy file or ``policies/`` itself is a symbolic link (its content may
change without a change under ``policies/``, and git stores the link, not the file).
"""

from __future__ import annotations

import posixpath
import subprocess
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gate.errors import GateError
from gate.policy.models import PolicyDocument
from gate.policy.policy_set import PolicySet
from gate.policy.sources import POLICIES_DIR, POLICY_SUFFIXES, PolicyFile, files_from_dir, git_env
from gate.spec.loader import LoadedSpec, validate_document
from gate.spec.yaml_source import MAX_YAML_BYTES, parse_yaml


def is_policy_file(path: str) -> bool:
    """A path the policy loader reads (when it is a file): ``policies/<name>.yaml|.yml``."""
    return posixpath.dirname(path) == POLICIES_DIR and posixpath.splitext(path)[1] in POLICY_SUFFIXES


def _under(base: str, path: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


class _Unavailable(Exception):
    """The policies on one side cannot be compared; the message says why (ends the reason)."""


# -- reading both sides -----------------------------------------------------------------------
@dataclass(frozen=True)
class PolicySide:
    """The policy files one side of the change loads, parsed and checked."""

    policy_set: PolicySet
    docs: tuple[tuple[str, PolicyDocument], ...]
    """(repo-relative file, document), in the order the loader composes them."""


def _side(files: list[PolicyFile], source: str) -> PolicySide:
    """Load ``files`` exactly as the gate does (``build_policy_set``), then keep the documents."""
    from gate.policy.loading import build_policy_set

    policy_set = build_policy_set(files, source=source)
    docs = tuple((f.shown, validate_document(PolicyDocument, parse_yaml(f.raw, f.shown, what="policy")))
                 for f in files)
    return PolicySide(policy_set=policy_set, docs=docs)


def _head_files(repo_root: Path) -> list[PolicyFile]:
    """The working tree's policy files (what ``load_policy_set`` reads), named ``policies/<name>``."""
    directory = repo_root / POLICIES_DIR
    if not directory.is_dir():
        return []  # the gate then runs on built-in defaults
    return [PolicyFile(shown=f"{POLICIES_DIR}/{Path(f.shown).name}", raw=f.raw) for f in files_from_dir(directory)]


def _head_links(repo_root: Path) -> tuple[list[str], list[str]]:
    """Symbolic links among the working tree's policy files (or ``policies/`` itself), and their targets."""
    directory = repo_root / POLICIES_DIR
    links: list[str] = [POLICIES_DIR] if directory.is_symlink() else []
    if directory.is_dir():
        links += [f"{POLICIES_DIR}/{p.name}" for p in sorted(directory.iterdir())
                  if p.suffix in POLICY_SUFFIXES and p.is_symlink()]
    root = repo_root.resolve()
    targets: list[str] = []
    for link in links:
        try:
            targets.append((repo_root / link).resolve().relative_to(root).as_posix())
        except (OSError, ValueError):
            continue  # outside the repository: no diff shows its changes; the link itself is reported
    return links, targets


def _git(repo_root: Path, *args: str) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo_root), *args], capture_output=True, check=False, timeout=120,
                              env=git_env())
    except (OSError, subprocess.SubprocessError) as exc:
        raise _Unavailable(f"git failed: {exc}") from None
    if proc.returncode != 0:
        raise _Unavailable(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _tree(repo_root: Path, commit: str, path: str) -> list[tuple[str, str, str, str]]:
    """``git ls-tree`` records (mode, type, object, path)."""
    out: list[tuple[str, str, str, str]] = []
    for record in _git(repo_root, "ls-tree", "-z", commit, "--", path).decode("utf-8", "replace").split("\0"):
        if record:
            meta, name = record.split("\t", 1)
            mode, kind, obj = meta.split()
            out.append((mode, kind, obj, name))
    return out


def _at_commit(repo_root: Path, commit: str) -> tuple[list[PolicyFile], list[str]]:
    """The merge base's policy files (what ``files_from_dir`` would read in a checkout of it) and links."""
    top = _tree(repo_root, commit, POLICIES_DIR)
    if not top:
        return [], []
    if top[0][0] == "120000":
        return [], [POLICIES_DIR]
    if top[0][1] != "tree":
        return [], []
    files: list[PolicyFile] = []
    links: list[str] = []
    for mode, kind, obj, name in sorted(_tree(repo_root, commit, f"{POLICIES_DIR}/"), key=lambda r: r[3]):
        if kind != "blob" or not is_policy_file(name):
            continue
        if mode == "120000":
            links.append(name)
            continue
        if int(_git(repo_root, "cat-file", "-s", obj).decode().strip() or 0) > MAX_YAML_BYTES:
            raise _Unavailable(f"{name} is over the {MAX_YAML_BYTES} byte limit for a policy")
        files.append(PolicyFile(shown=name, raw=_git(repo_root, "cat-file", "blob", obj)))
    return files, links


# -- one spec's view --------------------------------------------------------------------------
_KINDS = ("rules", "custom", "settings", "waivers", "hardware")


@dataclass(frozen=True)
class _Item:
    key: Hashable
    """What the engine reads from the entry (and, where findings name it, its file)."""
    file: str
    entry: Any


def _canon(value: Any) -> Hashable:
    """A hashable, type-exact form of policy data (``1``, ``1.0`` and ``true`` stay apart)."""
    if isinstance(value, BaseModel):
        return (type(value).__name__, _canon(value.model_dump()))
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((_canon(k), _canon(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_canon(v) for v in value))
    return (type(value).__name__, value)


View = dict[tuple[str, str], list[_Item]]


def spec_view(side: PolicySide, loaded: LoadedSpec) -> View:
    """Every policy entry that can apply to the spec, grouped as the engine reads them."""
    meta = loaded.spec.metadata
    constraint = loaded.spec.constraint
    hardware = constraint.target.hardware if constraint is not None else None
    view: View = {}

    def add(kind: str, ident: str, key: Hashable, file: str, entry: Any) -> None:
        view.setdefault((kind, ident), []).append(_Item(key=key, file=file, entry=entry))

    for file, doc in side.docs:
        for setting in doc.rules:
            if setting.scope.matches(meta):
                add("rules", setting.rule, (file, _canon(setting)), file, setting)
        for custom in doc.custom_rules:
            if custom.scope.matches(meta):
                add("custom", custom.id, (file, _canon(custom)), file, custom)
        for entry in doc.settings:
            if entry.scope.matches(meta):
                add("settings", "", _canon(entry), file, entry)  # settings_for never names the file
        for waiver in doc.waivers:
            if waiver.covers(meta.name):
                add("waivers", "", (file, _canon(waiver)), file, waiver)
        if hardware is not None and hardware in doc.hardware:
            add("hardware", hardware, _canon(side.policy_set.hardware[hardware]), file, hardware)
    return view


def _label(kind: str, entry: Any) -> tuple[str, str]:
    """(what the entry is, which specs it is for)."""
    if kind == "rules":
        return f"rules entry for {entry.rule}", entry.scope.describe()
    if kind == "custom":
        return f"custom rule {entry.id}", entry.scope.describe()
    if kind == "settings":
        return "settings entry", entry.scope.describe()
    if kind == "waivers":
        return f"waiver of {entry.rule}", "models " + ", ".join(entry.models)
    return f"hardware entry {entry}", ""


def _describe(kind: str, verb: str, entry: Any) -> str:
    label, scope = _label(kind, entry)
    if kind == "hardware":
        return f"{label} " + {"now applies": "added", "no longer applies": "removed"}.get(verb, verb)
    if verb == "changed":
        return f"{label} changed for {scope}"
    return f"{label} {verb} to {scope}"


def _reordered(kind: str, ident: str) -> str:
    return {"rules": f"rules entries for {ident} reordered", "settings": "settings entries reordered",
            "waivers": "waivers reordered"}.get(kind, f"{kind} {ident} reordered")


def _minus(items: list[_Item], other: list[_Item]) -> list[_Item]:
    """``items`` without one occurrence of each key in ``other`` (order kept)."""
    left = [i.key for i in other]
    out: list[_Item] = []
    for item in items:
        if item.key in left:
            left.remove(item.key)
        else:
            out.append(item)
    return out


def view_changes(base: View, head: View) -> list[tuple[str, str]]:
    """(file, what changed) for every group of entries that differs between the two views."""
    out: list[tuple[str, str]] = []
    groups = sorted(set(base) | set(head), key=lambda g: (_KINDS.index(g[0]), g[1]))
    for kind, ident in groups:
        old, new = base.get((kind, ident), []), head.get((kind, ident), [])
        if [i.key for i in old] == [i.key for i in new]:
            continue
        added, removed = _minus(new, old), _minus(old, new)
        if not added and not removed:  # the same entries in another order
            files = sorted({n.file for n, o in zip(new, old, strict=True) if n.key != o.key})
            out.extend((f, _reordered(kind, ident)) for f in files)
            continue
        for item in added:
            twin = next((r for r in removed if r.file == item.file), None)
            if twin is not None:
                removed.remove(twin)
                out.append((item.file, _describe(kind, "changed", item.entry)))
            else:
                out.append((item.file, _describe(kind, "now applies", item.entry)))
        out.extend((r.file, _describe(kind, "no longer applies", r.entry)) for r in removed)
    return out


MAX_REASONS_PER_FILE = 3
"""A spec's reasons name at most this many changed entries per policy file (the last one counts the rest)."""


# -- the whole change -------------------------------------------------------------------------
@dataclass
class PolicyChange:
    """What a diff does to the policies, and how to tell which specs it affects."""

    changed: tuple[str, ...] = ()
    """Changed paths the policy loader reads (or symbolic-link targets of policy files)."""
    ignored: tuple[str, ...] = ()
    """Changed paths under ``policies/`` that the loader never reads (policy tests, READMEs, ...)."""
    select_all: str | None = None
    """Set when every spec must be selected: the reason."""
    base: PolicySide | None = None
    head: PolicySide | None = None
    named: set[str] = field(default_factory=set)
    """Policy files some spec's reason names."""

    def reasons_for(self, loaded: LoadedSpec) -> list[str]:
        """``policy changed: <file> (<what>)`` for each entry that changed for this spec."""
        if self.base is None or self.head is None:
            return []
        per_file: dict[str, list[str]] = {}
        for file, what in view_changes(spec_view(self.base, loaded), spec_view(self.head, loaded)):
            self.named.add(file)
            bucket = per_file.setdefault(file, [])
            if what not in bucket:
                bucket.append(what)
        reasons: list[str] = []
        for file, whats in per_file.items():
            if len(whats) > MAX_REASONS_PER_FILE:  # e.g. a new policy file: name a few, count the rest
                whats = [*whats[:MAX_REASONS_PER_FILE - 1], f"{len(whats) - MAX_REASONS_PER_FILE + 1} more entries changed"]
            reasons += [f"policy changed: {file} ({what})" for what in whats]
        return reasons

    def notes(self) -> list[str]:
        """Policy changes that select no spec, and why."""
        out = [f"policy test changed, affects no spec: {p}" if _under(f"{POLICIES_DIR}/tests", p)
               else f"not read by the policy loader, affects no spec: {p}" for p in self.ignored]
        if self.select_all is None:
            out += [f"policy changed, no spec's applicable entries changed: {p}"
                    for p in self.changed if p not in self.named]
        return out


def analyse(repo_root: Path, ref: str, changed_paths: Iterable[str], *, shown_ref: str | None = None) -> PolicyChange:
    """Classify the changed paths and, when a policy the loader reads changed, load both sides.

    ``ref`` is the base commit (``select_specs`` resolves the name first); ``shown_ref`` is the name
    messages use."""
    paths = list(dict.fromkeys(changed_paths))
    links_head, targets = _head_links(repo_root)
    changed = tuple(p for p in paths if is_policy_file(p) or p == POLICIES_DIR
                    or any(_under(t, p) for t in targets))
    ignored = tuple(p for p in paths if _under(POLICIES_DIR, p) and p not in changed)
    change = PolicyChange(changed=changed, ignored=ignored)
    if not changed:
        return change
    what = changed[0] + (f" and {len(changed) - 1} more" if len(changed) > 1 else "")

    def fail(why: str) -> PolicyChange:
        change.select_all = f"policy changed: {what} ({why}: select all)"
        return change

    at_base = f"the merge base with {shown_ref or ref}"
    try:
        base_commit = _git(repo_root, "merge-base", ref, "HEAD").decode().strip()
        files_base, links_base = _at_commit(repo_root, base_commit)
    except _Unavailable:
        return fail(f"cannot read policies at {at_base}")
    links = [*links_head, *links_base]
    if links:
        return fail(f"{links[0]} is a symbolic link")
    try:
        change.head = _side(_head_files(repo_root), f"{POLICIES_DIR}/")
    except GateError:
        return fail("policies at HEAD do not load")
    try:
        change.base = _side(files_base, f"{base_commit}:{POLICIES_DIR}/")
    except GateError:
        return fail(f"policies at {at_base} do not load")
    return change
