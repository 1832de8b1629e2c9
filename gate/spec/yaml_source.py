"""Safe YAML reading that remembers where every key and value came from.

``read_yaml`` turns a file into plain Python data (dict/list/str/int/float/bool/None/date) plus a
``SourceMap`` from each key path to its 1-based line and column, so validation errors anywhere in
the gate can say ``path:line:col``. It refuses, with a clear ``SpecError``: missing files,
directories, files over the size limit, non-UTF-8 bytes, invalid YAML, duplicate keys, several
documents, empty documents, anchors/aliases (alias bombs), custom tags and non-string keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from gate.errors import SourceLocation, SpecError

MAX_YAML_BYTES = 1 << 20
"""Spec and policy files are small; anything over 1 MiB is refused before parsing."""

MAX_NODES = 100_000
MAX_DEPTH = 64

KeyPath = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Positions (1-based line, col) of every key (for mappings) or item (for sequences)."""

    path: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, key_path: KeyPath) -> SourceLocation:
        """The position of ``key_path``, or of its closest ancestor that exists in the file."""
        probe = tuple(key_path)
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return SourceLocation(self.path, line, col)
            probe = probe[:-1]
        line, col = self.positions.get((), (1, 1))
        return SourceLocation(self.path, line, col)


@dataclass
class YamlDocument:
    """A parsed YAML file: plain data, where each piece came from, and the raw bytes."""

    data: Any
    source_map: SourceMap
    raw: bytes


def display_path(path: Path) -> str:
    """A path as users typed it, relative to the working directory when possible."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_yaml(path: Path, *, what: str = "spec", max_bytes: int = MAX_YAML_BYTES) -> YamlDocument:
    """Read one YAML document from ``path`` (see module docs for what is refused)."""
    shown = display_path(path)
    raw = _read_bytes(path, shown, what, max_bytes)
    return parse_yaml(raw, shown, what=what)


def parse_yaml(raw: bytes, shown: str, *, what: str = "spec") -> YamlDocument:
    """Parse YAML bytes already read (``shown`` is the path used in messages)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            hint=f"save the {what} as UTF-8 text",
            location=SourceLocation(shown, line, col),
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise SpecError(
            "file is empty",
            hint=f"write a {what} document (`gate schema` prints the schema)",
            location=SourceLocation(shown),
        )
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        loaded = yaml.load(text)
    except DuplicateKeyError as exc:
        raise _yaml_error(exc, shown, "duplicate key", "remove or rename one of the two keys") from None
    except MarkedYAMLError as exc:
        raise _yaml_error(exc, shown, None, None) from None
    except YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", location=SourceLocation(shown)) from None
    except RecursionError:
        raise SpecError(
            "YAML is nested too deeply", hint="flatten the document", location=SourceLocation(shown)
        ) from None
    if loaded is None:
        raise SpecError(
            "file is empty",
            hint=f"write a {what} document (`gate schema` prints the schema)",
            location=SourceLocation(shown),
        )
    source_map = SourceMap(shown)
    data = _to_plain(loaded, (), source_map, _Budget())
    return YamlDocument(data=data, source_map=source_map, raw=raw)


def _read_bytes(path: Path, shown: str, what: str, max_bytes: int) -> bytes:
    where = SourceLocation(shown)
    if path.is_dir():
        raise SpecError(
            "is a directory, not a file",
            hint=f"pass a {what} file (gate check also accepts directories and expands them)",
            location=where,
        )
    if not path.exists():
        raise SpecError("file not found", hint="check the path", location=where)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SpecError(
                f"file is {size} bytes, over the {max_bytes} byte limit for a {what}",
                hint=f"a {what} is a small YAML document; check that this is the right file",
                location=where,
            )
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", location=where) from None
    if len(raw) > max_bytes:
        raise SpecError(
            f"file is over the {max_bytes} byte limit for a {what}",
            hint=f"a {what} is a small YAML document; check that this is the right file",
            location=where,
        )
    return raw


def _yaml_error(
    exc: MarkedYAMLError, shown: str, problem: str | None, hint: str | None
) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    location = SourceLocation(shown, mark.line + 1, mark.column + 1) if mark else SourceLocation(shown)
    text = problem or exc.problem or exc.context or "invalid YAML"
    if problem is None:
        if "expected a single document" in str(exc) or "but found another document" in str(exc):
            text = "several YAML documents in one file"
            hint = "put one document per file (remove the `---` separator)"
        elif "\\t" in str(exc) or "'\\t'" in text or "tab" in text:
            text = "tab character where YAML expects spaces"
            hint = "indent with spaces, not tabs"
        else:
            text = f"invalid YAML: {text}"
            hint = "fix the YAML syntax at this position"
    elif isinstance(exc, DuplicateKeyError) and exc.problem:
        key = exc.problem.split('"')[1] if '"' in exc.problem else None
        if key:
            text = f"duplicate key `{key}`"
    return SpecError(text, hint=hint, location=location)


class _Budget:
    """Counts nodes so hostile documents cannot blow up memory or time."""

    def __init__(self) -> None:
        self.nodes = 0


def _anchor_of(node: Any) -> str | None:
    anchor = getattr(node, "anchor", None)
    value = getattr(anchor, "value", None)
    return value if isinstance(value, str) else None


def _to_plain(node: Any, key_path: KeyPath, smap: SourceMap, budget: _Budget) -> Any:
    budget.nodes += 1
    where = smap.locate(key_path)
    if budget.nodes > MAX_NODES:
        raise SpecError(f"document has over {MAX_NODES} nodes", hint="split or shrink it", location=where)
    if len(key_path) > MAX_DEPTH:
        raise SpecError(f"document is nested over {MAX_DEPTH} levels", hint="flatten it", location=where)
    anchor = _anchor_of(node)
    if anchor is not None:
        raise SpecError(
            f"anchors and aliases are not allowed (found `&{anchor}`)",
            hint="write the value out in full; specs are read by reviewers",
            location=where,
        )
    if isinstance(node, CommentedMap):
        if node.merge:
            raise SpecError(
                "merge keys (`<<`) are not allowed", hint="write the keys out in full", location=where
            )
        out: dict[str, Any] = {}
        for key in node:
            if not isinstance(key, str):
                line, col = node.lc.key(key)
                raise SpecError(
                    f"key {key!r} is not a string",
                    hint="quote the key or rename it",
                    location=SourceLocation(smap.path, line + 1, col + 1),
                )
            line, col = node.lc.key(key)
            smap.positions[(*key_path, str(key))] = (line + 1, col + 1)
            out[str(key)] = _to_plain(node[key], (*key_path, str(key)), smap, budget)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            smap.positions[(*key_path, index)] = (line + 1, col + 1)
            items.append(_to_plain(item, (*key_path, index), smap, budget))
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (dt.datetime, dt.date)):
        return node
    raise SpecError(
        f"unsupported YAML value of type {type(node).__name__} (custom tags are not allowed)",
        hint="use plain scalars, mappings and lists",
        location=where,
    )
