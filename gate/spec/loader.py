"""Load and validate spec documents, mapping every pydantic error to ``path:line:col``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gate.errors import MultiSpecError, SourceLocation, SpecError
from gate.spec.models import API_VERSION, ModelSpec
from gate.spec.yaml_source import KeyPath, SourceMap, YamlDocument, display_path, read_yaml
from gate.suggest import did_you_mean

M = TypeVar("M", bound=BaseModel)

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus where it came from."""

    spec: ModelSpec
    path: Path
    """The file as given (relative paths stay relative)."""
    source_map: SourceMap
    """Key path -> (line, col), for findings that point at a key."""
    sha256: str
    """sha256 of the file's bytes (the spec hash recorded with every run)."""

    @property
    def shown_path(self) -> str:
        return self.source_map.path


def load_spec(path: Path) -> LoadedSpec:
    """Read, parse and validate one ModelSpec file; raise ``SpecError`` on any problem."""
    doc = read_yaml(path, what="spec")
    _check_header(doc, expected_kind="ModelSpec")
    spec = validate_document(ModelSpec, doc)
    return LoadedSpec(spec=spec, path=path, source_map=doc.source_map, sha256=hashlib.sha256(doc.raw).hexdigest())


def _check_header(doc: YamlDocument, *, expected_kind: str) -> None:
    """apiVersion/kind first, so a wrong document type gets one clear message, not twenty."""
    data = doc.data
    smap = doc.source_map
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a mapping at the top level, got {_type_name(data)}",
            hint=f"start the file with `apiVersion: {API_VERSION}` and `kind: {expected_kind}`",
            location=smap.locate(()),
        )
    version = data.get("apiVersion")
    if version is not None and version != API_VERSION:
        raise SpecError(
            f"apiVersion: {version!r} is not supported",
            hint=f"use `apiVersion: {API_VERSION}`",
            location=smap.locate(("apiVersion",)),
        )
    kind = data.get("kind")
    if kind is not None and kind != expected_kind:
        raise SpecError(
            f"kind: {kind!r} is not a {expected_kind}",
            hint=f"use `kind: {expected_kind}`, or pass this file where a {kind} is expected",
            location=smap.locate(("kind",)),
        )


def validate_document(model: type[M], doc: YamlDocument) -> M:
    """Validate plain YAML data against a pydantic model; errors carry file positions."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = [_to_spec_error(model, err, doc.source_map, doc.data) for err in exc.errors()]
        errors.sort(key=lambda e: (e.location.line or 0, e.location.col or 0) if e.location else (0, 0))
        if len(errors) == 1:
            raise errors[0] from None
        raise MultiSpecError(errors) from None


def _to_spec_error(model: type[BaseModel], err: Any, smap: SourceMap, data: Any) -> SpecError:
    loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    kind = err["type"]
    dotted = _dotted(loc)
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "extra_forbidden":
        parent = loc[:-1]
        allowed = _fields_at(model, parent)
        guess = did_you_mean(str(loc[-1]), allowed) if allowed else None
        hint = f"did you mean `{guess}`?" if guess else None
        if allowed and not guess:
            hint = f"allowed keys here: {', '.join(allowed)}"
        return SpecError(f"{dotted}: unknown key", hint=hint, location=smap.locate(loc))
    if kind == "missing":
        parent = loc[:-1]
        where = smap.locate(parent)
        return SpecError(
            f"{dotted}: required key is missing",
            hint=f"add `{loc[-1]}`" + (f" under `{_dotted(parent)}`" if parent else ""),
            location=where,
        )
    value = _value_at(data, loc)
    if kind in ("enum", "literal_error"):
        expected = err.get("ctx", {}).get("expected", "")
        return SpecError(
            f"{dotted}: {value!r} is not allowed",
            hint=f"use one of {expected}" if expected else None,
            location=smap.locate(loc),
        )
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "model_type":
        return SpecError(
            f"{dotted}: {message.lower()}, got {_type_name(value)} {_short(value)}",
            hint=f"fix the value of `{loc[-1]}`" if loc else None,
            location=smap.locate(loc),
        )
    return SpecError(
        f"{dotted}: {message}" if dotted else message,
        location=smap.locate(loc),
    )


def _dotted(loc: KeyPath) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Field names allowed at ``loc`` in ``model`` (following nested models and lists)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _unwrap(info.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if not args:
        return annotation
    for arg in args:
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _value_at(data: Any, loc: KeyPath) -> Any:
    current = data
    for part in loc:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return None
    return current


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def expand_spec_paths(paths: list[Path]) -> list[Path]:
    """Files stay as given; directories expand to their ``*.yaml``/``*.yml`` files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file())
            if not found:
                raise SpecError(
                    "directory has no spec files (*.yaml, *.yml)",
                    hint="pass a spec file or a directory of specs",
                    location=SourceLocation(display_path(path)),
                )
            out.extend(found)
        else:
            out.append(path)
    return out

