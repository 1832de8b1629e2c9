"""Specs built from fragments: the data format of rule cases and ``policies/tests``.

A fragment is deep-merged onto a base spec: mappings merge key by key, lists and scalars
replace, and ``null`` deletes the key. The merged data is written back to YAML and loaded
through the ordinary loader, so findings carry real ``line:col`` positions.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from gate.spec.loader import LoadedSpec, validate_document
from gate.spec.models import ModelSpec
from gate.spec.yaml_source import parse_yaml


def deep_merge(base: Any, fragment: Any) -> Any:
    """``fragment`` merged onto ``base`` (neither is modified)."""
    if not isinstance(base, dict) or not isinstance(fragment, dict):
        return fragment
    out = dict(base)
    for key, value in fragment.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = _drop_nulls(value)
    return out


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    return value


def dump_yaml(data: Any) -> str:
    """Block-style YAML for plain data (dates stay dates)."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def loaded_from_data(data: Any, shown: str) -> LoadedSpec:
    """Validate spec data as if it were the file ``shown`` (raises ``SpecError``)."""
    raw = dump_yaml(data).encode("utf-8")
    doc = parse_yaml(raw, shown, what="spec")
    spec = validate_document(ModelSpec, doc)
    return LoadedSpec(spec=spec, path=Path(shown), source_map=doc.source_map, sha256=hashlib.sha256(raw).hexdigest())
