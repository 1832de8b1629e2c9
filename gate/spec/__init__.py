"""Spec documents: pydantic models, a position-keeping YAML loader, JSON Schema export."""

from __future__ import annotations

from gate.spec.loader import LoadedSpec, check_header, expand_spec_paths, load_spec, validate_document
from gate.spec.models import ModelSpec
from gate.spec.yaml_source import SourceMap, YamlDocument, parse_yaml, read_yaml

__all__ = [
    "LoadedSpec",
    "ModelSpec",
    "SourceMap",
    "YamlDocument",
    "check_header",
    "expand_spec_paths",
    "load_spec",
    "parse_yaml",
    "read_yaml",
    "validate_document",
]
