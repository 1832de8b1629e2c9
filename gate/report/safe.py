"""Make untrusted strings safe to show: every report format passes its text through here.

A pull request controls most of what a report shows (spec names, owners, constraint statements,
paths, messages quoting spec values). Two threats:

- **control characters** (ANSI/OSC escape sequences, C0/C1 codes) would reach the terminal, the CI
  log and GitHub annotations raw: clear the screen, forge log lines, plant OSC 8 hyperlinks.
  ``plain`` removes whole escape sequences and every other control character except newline and
  tab; ``one_line`` also folds those into spaces.
- **Markdown** from a PR would render in the comment as ``@mentions`` (notifying people), links
  and remote images (tracking pixels). ``markdown_text`` escapes it so it shows literally.
"""

from __future__ import annotations

import re

_ESCAPE_SEQUENCE = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]                       # CSI: ESC [ params final (colours, cursor, clear)
    | \x9b[0-?]*[ -/]*[@-~]                       # CSI, 8-bit form
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])     # OSC / DCS / SOS / PM / APC, 7- or 8-bit introducer ...
      .*?(?:\x07|\x1b\\|\x9c|$)                   # ... up to BEL or ST (or the end of the string)
    | \x1b[ -/]*[0-~]?                            # any other escape (ESC c, ESC ( B, a lone ESC)
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 (except tab and newline), DEL and C1; carriage return included (it rewrites a line)."""


def plain(text: object) -> str:
    """``text`` without escape sequences or control characters (newline and tab kept)."""
    value = str(text)
    if not _CONTROL.search(value):  # the common case: nothing to remove
        return value
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", value))


_BREAK = re.compile(r"[ ]*[\n\t][\n\t ]*")


def one_line(text: object) -> str:
    """``plain`` text on one line: newlines and tabs become single spaces."""
    value = plain(text)
    return _BREAK.sub(" ", value).strip() if "\n" in value or "\t" in value else value.strip()


_ZWSP = "&#8203;"
"""A zero-width space, as an entity: breaks GitHub's mention and autolink detection, invisible."""
_MARKDOWN_ACTIVE = re.compile(r"[\\`\[\]<>|&@]|(?<=[hH][tT][tT][pP])(?=:)|(?<=[hH][tT][tT][pP][sS])(?=:)|(?i:www)\.")


def _markdown_escape(match: re.Match[str]) -> str:
    token = match.group(0)
    if token == "":  # just before the colon of http: / https:
        return _ZWSP
    if token.lower() == "www.":
        return token[:3] + _ZWSP + "."
    return {
        "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "@": "@" + _ZWSP,
        "[": "&#91;", "]": "&#93;", "`": "&#96;", "\\": "&#92;",
    }[token]


_CODE = re.compile(r"(`[^`]+`)")


def markdown_text(text: object) -> str:
    """Untrusted text that GitHub renders literally, on one line, safe inside a table cell.

    HTML and link syntax are escaped (no links, images, code or raw HTML), ``@`` and
    ``http(s):``/``www.`` get a zero-width space (no mentions, no autolinks), pipes become
    ``&#124;`` (a table cell, without the backslash-escaped ``\\|`` that shows in raw text).
    Text between backticks stays inline code (rendered literally, so it needs no escaping).
    """
    parts = _CODE.split(one_line(text))
    return "".join(
        code_span(part[1:-1]) if i % 2 else _MARKDOWN_ACTIVE.sub(_markdown_escape, part) for i, part in enumerate(parts)
    )


def code_span(text: object) -> str:
    """Untrusted text as inline code: shown literally (no mentions, links or HTML inside code).

    Backticks cannot be escaped inside a code span, so the span's fence is longer than any run of
    backticks in the text; pipes are still cell separators in a GFM table, so they become U+2223.
    """
    body = one_line(text).replace("|", "\u2223")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"
