"""Load and validate spec documents, mapping every pydantic error to ``path:line:col``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gate.errors import MultiSpecError, SourceLocation, SpecError
from gate.spec.diagnostics import spec_errors, type_name
from gate.spec.models import API_VERSION, ModelSpec
from gate.spec.yaml_source import SourceMap, YamlDocument, display_path, read_yaml

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
    check_header(doc, expected_kind="ModelSpec")
    spec = validate_document(ModelSpec, doc)
    return LoadedSpec(spec=spec, path=path, source_map=doc.source_map, sha256=hashlib.sha256(doc.raw).hexdigest())


def check_header(doc: YamlDocument, *, expected_kind: str, api_version: str = API_VERSION) -> None:
    """apiVersion/kind first, so a wrong document type gets one clear message, not twenty."""
    data = doc.data
    smap = doc.source_map
    start = f"start the file with `apiVersion: {api_version}` and `kind: {expected_kind}`"
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a mapping at the top level, got {type_name(data)}",
            hint=start,
            location=smap.locate(()),
        )
    version = data.get("apiVersion")
    if version is not None and version != api_version:
        raise SpecError(
            f"apiVersion: {_show(version)} is not supported",
            hint=f"use `apiVersion: {api_version}`",
            location=smap.locate(("apiVersion",)),
        )
    kind = data.get("kind")
    if kind is not None and kind != expected_kind:
        other = f", or pass this file where a {kind} is expected" if isinstance(kind, str) and kind.isidentifier() else ""
        raise SpecError(
            f"kind: {_show(kind)} is not a {expected_kind}",
            hint=f"use `kind: {expected_kind}`{other}",
            location=smap.locate(("kind",)),
        )


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type_name(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..." + text[-1:]


def validate_document(model: type[M], doc: YamlDocument) -> M:
    """Validate plain YAML data against a pydantic model; errors carry file positions."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = spec_errors(model, exc.errors(), doc.source_map, doc.data)
        if len(errors) == 1:
            raise errors[0] from None
        raise MultiSpecError(errors) from None


def expand_spec_paths(paths: list[Path]) -> list[Path]:
    """Files stay as given; directories expand to their ``*.yaml``/``*.yml`` files, recursively, sorted.

    Hidden files and directories (``.git``, ``.github`` ...) are skipped.
    """
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SPEC_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.is_file()
            )
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
