"""Safe YAML reading that remembers where every key and value came from.

``read_yaml`` turns a file into plain Python data (dict/list/str/int/float/bool/None/date) plus a
``SourceMap`` from each key path to its 1-based line and column, so validation errors anywhere in
the gate can say ``path:line:col``. It refuses, with a clear ``SpecError``: missing files,
directories and other non-regular files, files over the size limit, non-UTF-8 bytes, control
characters, invalid YAML, duplicate keys, several documents, empty documents, anchors and aliases
(so alias bombs never expand), merge keys, custom tags, non-string keys and hostile nesting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarbool import ScalarBoolean

from gate.errors import SourceLocation, SpecError
from gate.spec.yaml_parser import MAX_DEPTH, load_text, too_deep
from gate.suggest import did_you_mean

MAX_YAML_BYTES = 256 * 1024
"""Spec and policy files are small (a spec is about 2 KB); larger files are refused before parsing,
which also bounds parse time (the round-trip parser handles about 10k values per second)."""

MAX_NODES = 10_000
"""Values (scalars, mappings, lists) in one document; a spec has about 60."""

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_YAML_BYTES", "KeyPath", "SourceMap", "YamlDocument", "display_path",
           "dotted", "parse_yaml", "read_source_bytes", "read_yaml"]

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


def dotted(key_path: KeyPath) -> str:
    """``("quality", "metrics", 0, "task")`` -> ``quality.metrics[0].task``."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def display_path(path: Path) -> str:
    """A path as the user gave it; absolute paths under the working directory become relative."""
    if not path.is_absolute():
        return str(path)
    cwd = Path.cwd()
    for base, target in ((cwd, path), (cwd.resolve(), path.resolve())):
        try:
            return str(target.relative_to(base))
        except ValueError:
            continue
    return str(path)


def read_yaml(path: Path, *, what: str = "spec", max_bytes: int = MAX_YAML_BYTES) -> YamlDocument:
    """Read one YAML document from ``path`` (see module docs for what is refused)."""
    shown = display_path(path)
    raw = _read_bytes(path, shown, what, max_bytes)
    return parse_yaml(raw, shown, what=what)


def read_source_bytes(path: Path, *, what: str, max_bytes: int = MAX_YAML_BYTES) -> bytes:
    """A file's bytes within the loader's limits (regular files only, size-capped), for callers that
    only peek at a file (e.g. a task directory's index) before ``read_yaml`` parses it."""
    return _read_bytes(path, display_path(path), what, max_bytes)


def parse_yaml(raw: bytes, shown: str, *, what: str = "spec") -> YamlDocument:
    """Parse YAML bytes already read (``shown`` is the path used in messages)."""
    text = _decode(raw, shown, what)
    if _blank(text):
        raise _empty(shown, what)
    loaded = load_text(text, shown)
    if loaded is None:
        raise _empty(shown, what)
    source_map = SourceMap(shown)
    data = _Converter(source_map).plain(loaded, ())
    return YamlDocument(data=data, source_map=source_map, raw=raw)


def _decode(raw: bytes, shown: str, what: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            hint=f"save the {what} as UTF-8 text",
            location=_byte_location(raw, exc.start, shown),
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _byte_location(raw: bytes, offset: int, shown: str) -> SourceLocation:
    line = raw.count(b"\n", 0, offset) + 1
    col = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return SourceLocation(shown, line, col)


def _blank(text: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines())


SCHEMA_COMMANDS = {"spec": "gate schema", "policy": "gate schema --kind policy"}


def _empty(shown: str, what: str) -> SpecError:
    command = SCHEMA_COMMANDS.get(what)
    return SpecError(
        "file is empty",
        hint=f"write a {what} document" + (f" (`{command}` prints the schema)" if command else ""),
        location=SourceLocation(shown),
    )


def _read_bytes(path: Path, shown: str, what: str, max_bytes: int) -> bytes:
    where = SourceLocation(shown)
    too_big_hint = f"a {what} is a small YAML document; check that this is the right file"
    try:
        if path.is_dir():
            raise SpecError(
                "is a directory, not a file",
                hint=f"pass a {what} file (`gate check` also accepts directories and expands them)",
                location=where,
            )
        if not path.exists():
            raise SpecError("file not found", hint=_not_found_hint(path), location=where)
        if not path.is_file():
            raise SpecError(
                "is not a regular file", hint=f"pass the {what} file itself, not a pipe or device", location=where
            )
        size = path.stat().st_size
        if size > max_bytes:
            raise SpecError(f"file is {size} bytes, over the {max_bytes} byte limit for a {what}", hint=too_big_hint, location=where)
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise SpecError(
            f"cannot read file: {exc.strerror or exc}", hint="check the path and its permissions", location=where
        ) from None
    if len(raw) > max_bytes:  # the file grew between stat and read
        raise SpecError(f"file is over the {max_bytes} byte limit for a {what}", hint=too_big_hint, location=where)
    return raw


def _not_found_hint(path: Path) -> str:
    parent = path.parent
    try:
        siblings = [p.name for p in parent.iterdir()] if parent.is_dir() else []
    except OSError:
        siblings = []
    guess = did_you_mean(path.name, siblings)
    if guess:
        return f"did you mean `{parent / guess if str(parent) != '.' else guess}`?"
    return "check the path (relative paths are resolved from the current directory)"


class _Converter:
    """ruamel's round-trip objects -> plain data, recording positions and enforcing budgets."""

    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.nodes = 0

    def plain(self, node: Any, key_path: KeyPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError(
                f"document has more than {MAX_NODES} values", hint="split or shrink it", location=self.smap.locate(key_path)
            )
        if len(key_path) > MAX_DEPTH:
            raise too_deep(self.smap.locate(key_path))
        if isinstance(node, CommentedMap):
            return self._mapping(node, key_path)
        if isinstance(node, CommentedSeq):
            return self._sequence(node, key_path)
        if isinstance(node, str):
            if not node.isascii():
                self._check_text(node, key_path, self.smap.locate(key_path))
            return str(node)
        if node is None or type(node) in (bool, int, float):
            return node
        if isinstance(node, ScalarBoolean):  # an int subclass: test it before int
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, (dt.datetime, dt.date)):
            return node
        raise self._unsupported(node, key_path)

    def _mapping(self, node: CommentedMap, key_path: KeyPath) -> dict[str, Any]:
        positions = self.smap.positions
        if node.merge:
            raise SpecError(
                _at(key_path, "merge keys (`<<`) are not allowed"),
                hint="write the keys out in full",
                location=self.smap.locate(key_path),
            )
        out: dict[str, Any] = {}
        lc = node.lc
        for key, value in node.items():
            line, col = lc.key(key)
            if not isinstance(key, str):
                raise SpecError(
                    _at(key_path, f"key {_key_repr(key)} is not a string"),
                    hint=f'quote the key (`"{_key_repr(key)}": ...`) or rename it',
                    location=SourceLocation(self.smap.path, line + 1, col + 1),
                )
            if not key.isascii():
                self._check_text(key, key_path, SourceLocation(self.smap.path, line + 1, col + 1))
            child = (*key_path, str(key))
            positions[child] = (line + 1, col + 1)
            out[str(key)] = self.plain(value, child)
        return out

    def _sequence(self, node: CommentedSeq, key_path: KeyPath) -> list[Any]:
        positions = self.smap.positions
        lc = node.lc
        items: list[Any] = []
        for index, item in enumerate(node):
            line, col = lc.item(index)
            child = (*key_path, index)
            positions[child] = (line + 1, col + 1)
            items.append(self.plain(item, child))
        return items

    @staticmethod
    def _check_text(text: str, key_path: KeyPath, where: SourceLocation) -> None:
        """Refuse lone surrogates (``"\\udad7"`` escapes): they are not text and cannot be printed."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SpecError(
                _at(key_path, f"invalid unicode escape \\u{ord(text[exc.start]):04x} (a lone surrogate)"),
                hint="remove the escape, or write the character itself",
                location=where,
            ) from None

    def _unsupported(self, node: Any, key_path: KeyPath) -> SpecError:
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag in ("tag:yaml.org,2002:value", "tag:yaml.org,2002:merge"):
            text = getattr(node, "value", "")
            return SpecError(
                _at(key_path, f"`{text}` has a special meaning in YAML"),
                hint=f'quote it: "{text}"',
                location=self.smap.locate(key_path),
            )
        if isinstance(tag, str) and tag:
            what = f"custom tag `{tag.replace('tag:yaml.org,2002:', '!!')}` is not allowed"
        elif isinstance(node, bytes):
            what = "binary values (`!!binary`) are not allowed"
        elif isinstance(node, (set, frozenset)) or type(node).__name__ == "CommentedSet":
            what = "sets (`!!set`) are not allowed"
        else:
            what = f"values of type {type(node).__name__} are not allowed"
        return SpecError(
            _at(key_path, what),
            hint="use plain strings, numbers, booleans, dates, mappings and lists",
            location=self.smap.locate(key_path),
        )


def _at(key_path: KeyPath, message: str) -> str:
    return f"{dotted(key_path)}: {message}" if key_path else message


def _key_repr(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (list, tuple)):
        return "[...]"
    return str(key)
