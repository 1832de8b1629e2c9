"""The configured round-trip YAML parser, and its errors translated into ``SpecError``s.

One ``YAML(typ="rt")`` per thread is reused (building one costs about a tenth of parsing a spec).
Its composer refuses anchors, aliases and tags before anything is constructed, and its depth limit
stops hostile nesting; ruamel's terse problems become messages with a hint.
"""

from __future__ import annotations

import threading
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.reader import ReaderError

from gate.errors import SourceLocation, SpecError

MAX_DEPTH = 64
"""Nesting levels in one document (a spec needs 4)."""


def text_location(text: str, offset: int, shown: str) -> SourceLocation:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SourceLocation(shown, line, col)



class _Refused(Exception):
    """A construct the composer refuses; becomes a ``SpecError`` with the event's position."""

    def __init__(self, message: str, hint: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.hint, self.line, self.col = message, hint, mark.line + 1, mark.column + 1


class _PlainComposer(Composer):
    """Refuses anchors, aliases and tags before anything is built: alias bombs never expand and
    no tag-specific constructor (``!!python/...``, ``!!binary``, ``!!float`` ...) ever runs."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            raise _Refused(f"anchors and aliases are not allowed (found alias `*{event.anchor}`)", _ALIAS_HINT, event.start_mark)
        if event.anchor is not None:
            raise _Refused(f"anchors and aliases are not allowed (found anchor `&{event.anchor}`)", _ALIAS_HINT, event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = str(getattr(tag, "value", tag)).replace("tag:yaml.org,2002:", "!!")
            raise _Refused(
                f"tags are not allowed (found `{shown}`)",
                "remove the tag; quote a value to make it a string",
                event.start_mark,
            )
        return super().compose_node(parent, index)


_ALIAS_HINT = "write the value out in full; specs are read by reviewers"


_parsers = threading.local()


def _yaml() -> YAML:
    """One configured parser per thread, reused across files."""
    yaml: YAML | None = getattr(_parsers, "yaml", None)
    if yaml is None:
        yaml = YAML(typ="rt", pure=True)
        yaml.allow_duplicate_keys = False
        yaml.Composer = _PlainComposer
        yaml.max_depth = MAX_DEPTH
        _parsers.yaml = yaml
    return yaml


def load_text(text: str, shown: str) -> Any:
    try:
        loaded = _yaml().load(text)
    except BaseException:
        _parsers.yaml = None  # a parser that failed midway may keep state (e.g. depth): start afresh
        try:
            raise
        except _Refused as exc:
            raise SpecError(exc.message, hint=exc.hint, location=SourceLocation(shown, exc.line, exc.col)) from None
        except DuplicateKeyError as exc:
            raise _duplicate_key_error(exc, text, shown) from None
        except MarkedYAMLError as exc:
            raise _syntax_error(exc, shown) from None
        except ReaderError as exc:
            raise SpecError(
                f"control character U+{exc.character:04X} is not allowed in YAML"
                if isinstance(exc.character, int)
                else "file has characters YAML does not allow",
                hint="remove it (is this a binary file?); use escapes like \"\\t\" in a quoted string",
                location=text_location(text, exc.position, shown),
            ) from None
        except YAMLError as exc:
            raise SpecError(
                f"invalid YAML: {str(exc).splitlines()[0]}", hint="fix the YAML syntax", location=SourceLocation(shown)
            ) from None
        except RecursionError:
            raise too_deep(SourceLocation(shown)) from None
        except Exception as exc:  # the parser's own bugs on hostile input: still bad input, not a crash
            raise SpecError(
                f"YAML the parser cannot read ({type(exc).__name__}: {exc})",
                hint="simplify this part of the file; plain mappings, lists and scalars always work",
                location=SourceLocation(shown),
            ) from None
    return loaded


def too_deep(where: SourceLocation) -> SpecError:
    return SpecError(f"document is nested more than {MAX_DEPTH} levels deep", hint="flatten it", location=where)


def _mark_location(shown: str, mark: Any) -> SourceLocation:
    return SourceLocation(shown, mark.line + 1, mark.column + 1) if mark is not None else SourceLocation(shown)


def _duplicate_key_error(exc: DuplicateKeyError, text: str, shown: str) -> SpecError:
    problem = exc.problem or ""
    key = problem.split('"')[1] if problem.count('"') >= 2 else None
    first = _first_occurrence(text, key, exc.context_mark, exc.problem_mark)
    return SpecError(
        (f"duplicate key `{key}`" if key else "duplicate key") + (f" (first given at line {first})" if first else ""),
        hint="remove or rename one of the two keys",
        location=_mark_location(shown, exc.problem_mark),
    )


def _first_occurrence(text: str, key: str | None, start: Any, end: Any) -> int | None:
    """The line of the first ``key:`` in the same block mapping (None when it cannot be told)."""
    if key is None or start is None or end is None:
        return None
    lines = text.splitlines()
    col = end.column
    for number in range(start.line, min(end.line, len(lines))):
        rest = lines[number][col:] if len(lines[number]) > col else ""
        if lines[number][:col].strip(" -") == "" and rest.startswith((f"{key}:", f'"{key}":', f"'{key}':")):
            return number + 1
    return None


_SYNTAX_HINTS: tuple[tuple[str, str, str], ...] = (
    # (ruamel's problem text contains, our message, hint)
    (
        "mapping values are not allowed here",
        "a `:` is not allowed here",
        "check the indentation of this line against the lines above (keys of one section line up), "
        "or quote a value that contains ': '",
    ),
    (
        "could not find expected ':'",
        "expected `key: value`",
        "put `: ` after the key, and quote values that span lines",
    ),
    (
        "expected <block end>",
        "the indentation does not match the lines above",
        "keys of one section must start in the same column",
    ),
    ("found unexpected end of stream", "the file ends inside a quoted string", "close the quote"),
    ("found undefined alias", "aliases are not allowed", "write the value out in full"),
    ("maximum depth of data structure exceeded", f"document is nested more than {MAX_DEPTH} levels deep", "flatten it"),
)


def _syntax_error(exc: MarkedYAMLError, shown: str) -> SpecError:
    location = _mark_location(shown, exc.problem_mark or exc.context_mark)
    problem = exc.problem or exc.context or "syntax error"
    if exc.context and "expected a single document" in exc.context:
        return SpecError(
            "several YAML documents in one file",
            hint="put one document per file (remove the `---` separator)",
            location=location,
        )
    if "'\\t'" in problem or "tab" in problem:
        return SpecError("tab character where YAML expects spaces", hint="indent with spaces, not tabs", location=location)
    for needle, message, hint in _SYNTAX_HINTS:
        if needle in problem:
            return SpecError(message, hint=hint, location=location)
    opened = exc.context_mark
    for needle, what, closer in (("expected ',' or ']'", "`[` list", "]"), ("expected ',' or '}'", "`{` mapping", "}")):
        if needle in problem and opened is not None:
            return SpecError(
                f"the {what} opened at line {opened.line + 1}, column {opened.column + 1} is not closed",
                hint=f"close it with `{closer}`, and separate its items with `, `",
                location=location,
            )
    text = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
        text += f" ({exc.context} started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    return SpecError(text, hint="fix the YAML syntax at this position", location=location)
