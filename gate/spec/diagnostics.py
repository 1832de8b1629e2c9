"""Pydantic validation errors -> ``SpecError``s that name the field, what is wrong and the fix.

Each pydantic error's ``loc`` is mapped to the key's ``path:line:col`` through the document's
``SourceMap``; messages are rewritten from pydantic's generic wording into the spec's terms.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gate.errors import SpecError
from gate.spec.models import SPEC_VALUE_ERROR
from gate.spec.yaml_source import KeyPath, SourceMap, dotted
from gate.suggest import did_you_mean

_EXPECTED: dict[str, str] = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date (YYYY-MM-DD)",
    "dict": "a mapping (`key: value` lines indented below it)",
    "model": "a mapping (`key: value` lines indented below it)",
    "list": "a list (`[a, b]`, or `- item` lines)",
}

_RANGE: dict[str, tuple[str, str]] = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def spec_errors(model: type[BaseModel], raw_errors: list[Any], smap: SourceMap, data: Any) -> list[SpecError]:
    """One ``SpecError`` per distinct problem, sorted by position."""
    grouped: dict[tuple[KeyPath, str], list[Any]] = {}
    for err in raw_errors:
        loc = _data_loc(err, data)
        family = "union" if loc != _clean(err["loc"]) else err["type"]
        grouped.setdefault((loc, family), []).append(err)
    out: list[SpecError] = []
    for (loc, family), errs in grouped.items():
        if family == "union":
            out.append(_union_error(model, loc, errs, smap, data))
        else:
            out.append(_one_error(model, loc, errs[0], smap, data))
    out.sort(key=lambda e: (e.location.line or 0, e.location.col or 0) if e.location else (0, 0))
    return out


def _clean(loc: tuple[Any, ...]) -> KeyPath:
    return tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _data_loc(err: Any, data: Any) -> KeyPath:
    """The error's location cut to the part that exists in the document.

    Union members add their type name to ``loc`` (``options.x.bool``); those are not keys. Missing
    and unknown keys keep their last part: it names the key.
    """
    loc = _clean(err["loc"])
    current = data
    for depth, part in enumerate(loc):
        if _has(current, part):
            current = current[part]
        else:
            keeps_last = err["type"] in ("missing", "extra_forbidden") and depth == len(loc) - 1
            return loc if keeps_last else loc[:depth]
    return loc


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, dict):
        return isinstance(part, str) and part in container
    if isinstance(container, list):
        return isinstance(part, int) and 0 <= part < len(container)
    return False


def _one_error(model: type[BaseModel], loc: KeyPath, err: Any, smap: SourceMap, data: Any) -> SpecError:
    kind: str = err["type"]
    name = dotted(loc)
    key = str(loc[-1]) if loc and isinstance(loc[-1], str) else None
    ctx: dict[str, Any] = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = fields_at(model, loc[:-1])
        guess = did_you_mean(str(loc[-1]), allowed) if allowed else None
        if guess:
            hint: str | None = f"did you mean `{guess}`?"
        else:
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
        return SpecError(f"{name}: unknown key", hint=hint, location=smap.locate(loc))
    if kind == "missing":
        parent = loc[:-1]
        where = f" under `{dotted(parent)}`" if parent else " at the top level"
        about = _about(model, loc)
        return SpecError(
            f"{name}: required key is missing",
            hint=f"add `{key}`{where}" + (f" ({about})" if about and "(" not in about else ""),
            location=smap.locate(parent),
        )
    value = _value_at(data, loc)
    if kind == SPEC_VALUE_ERROR:
        sub = ctx.get("key")
        at = (*loc, sub) if sub else loc
        return SpecError(f"{name}: {ctx.get('message', err['msg'])}", hint=ctx.get("hint"), location=smap.locate(at))
    if kind in ("enum", "literal_error"):
        choices = _choices(model, loc)
        guess = did_you_mean(str(value), choices) if choices else None
        listed = ", ".join(choices) if choices else str(ctx.get("expected", ""))
        hint = f"did you mean {guess!r}? Allowed: {listed}" if guess else f"use one of: {listed}"
        return SpecError(f"{name}: {_show(value)} is not allowed", hint=hint, location=smap.locate(loc))
    if kind in _RANGE:
        bound_key, relation = _RANGE[kind]
        limit = ctx.get(bound_key)
        about = _about(model, loc)
        return SpecError(
            f"{name}: {_show(value)} is out of range; it must be {relation} {limit}",
            hint=f"set `{key}` to a value {relation} {limit}" + (f" ({about})" if about and "(" not in about else ""),
            location=smap.locate(loc),
        )
    expected = _expected(kind)
    if expected is not None:
        return SpecError(
            f"{name}: expected {expected}, got {_describe(value)}",
            hint=_type_hint(kind, key, value),
            location=smap.locate(loc),
        )
    message = str(err["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return SpecError(
        f"{name}: {message}" if name else message,
        hint="see `gate schema` or docs/spec-reference.md for the allowed values",
        location=smap.locate(loc),
    )


def _union_error(model: type[BaseModel], loc: KeyPath, errs: list[Any], smap: SourceMap, data: Any) -> SpecError:
    wanted: list[str] = []
    for err in errs:
        expected = _UNION_NAMES.get(err["type"].split("_")[0]) or _expected(err["type"])
        if expected and expected not in wanted:
            wanted.append(expected)
    if "a number" in wanted and "a whole number" in wanted:
        wanted.remove("a whole number")
    value = _value_at(data, loc)
    if not wanted:  # not a plain type mismatch: report the first member's own problem
        return _one_error(model, loc, errs[0], smap, data)
    return SpecError(
        f"{dotted(loc)}: expected {_one_of(wanted)}, got {_describe(value)}",
        hint=f"write `{loc[-1]}` as a single value, e.g. true, 4 or a string" if loc else "write a single value",
        location=smap.locate(loc),
    )


_UNION_NAMES = {"bool": "a boolean", "int": "a whole number", "float": "a number", "string": "a string"}


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _expected(kind: str) -> str | None:
    for prefix, text in _EXPECTED.items():
        if kind.startswith(prefix + "_"):
            return text
    if kind == "model_attributes_type":
        return _EXPECTED["model"]
    return None


def _type_hint(kind: str, key: str | None, value: Any) -> str:
    name = f"`{key}`" if key else "the value"
    if kind.startswith(("dict", "model")):
        if value is None:
            return f"{name} is empty: put its keys on the lines below it, indented"
        if isinstance(value, str):
            return f"{name} is a section: put its keys on the lines below it, indented"
        return f"{name} is a section of `key: value` lines"
    if kind.startswith("list"):
        return f"write {name} as a list, e.g. `[a, b]`"
    if kind.startswith("int"):
        return f"write {name} as a whole number without quotes, e.g. 4"
    if kind.startswith("float"):
        return f"write {name} as a number without quotes, e.g. 0.5"
    if kind.startswith("bool"):
        return f"write {name} as true or false"
    if kind.startswith("string"):
        if isinstance(value, (dict, list)) or value is None:
            return f"write {name} as a single text value"
        return f"quote the value of {name} to make it a string"
    if kind.startswith("date"):
        return f"write {name} as YYYY-MM-DD, e.g. 2026-10-01"
    return f"fix the value of {name}"


def fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Field names allowed at ``loc`` in ``model`` (following nested models and lists)."""
    target = _annotation_at(model, loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return list(target.model_fields)
    return []


def _field_at(model: type[BaseModel], loc: KeyPath) -> FieldInfo | None:
    current: Any = model
    info: FieldInfo | None = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(str(part))
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return info


def _annotation_at(model: type[BaseModel], loc: KeyPath) -> Any:
    if not loc:
        return model
    info = _field_at(model, loc)
    return _unwrap(info.annotation) if info is not None else None


def _unwrap(annotation: Any) -> Any:
    """``Foo | None`` / ``list[Foo]`` -> ``Foo`` for models and enums; else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, (BaseModel, Enum)):
        return annotation
    if get_origin(annotation) is Literal:
        return annotation
    for arg in get_args(annotation):
        inner = _unwrap(arg)
        if (isinstance(inner, type) and issubclass(inner, (BaseModel, Enum))) or get_origin(inner) is Literal:
            return inner
    return annotation


def _choices(model: type[BaseModel], loc: KeyPath) -> list[str]:
    target = _annotation_at(model, loc)
    if isinstance(target, type) and issubclass(target, Enum):
        return [str(m.value) for m in target]
    if get_origin(target) is Literal:
        return [str(a) for a in get_args(target)]
    return []


def _about(model: type[BaseModel], loc: KeyPath) -> str:
    """The field's description, as a lowercase clause."""
    info = _field_at(model, loc)
    text = (info.description or "").strip().rstrip(".") if info is not None else ""
    return text[:1].lower() + text[1:] if text else ""


def _value_at(data: Any, loc: KeyPath) -> Any:
    current = data
    for part in loc:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return None
    return current


def type_name(value: Any) -> str:
    """``a mapping``, ``a list``, ``a string`` ... as messages say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dt.datetime):
        return "a date-time"
    if isinstance(value, dt.date):
        return "a date"
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return type_name(value)
    return f"{type_name(value)} {_show(value)}"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..." + text[-1:]
