""""Did you mean" suggestions shared by every registry and schema error."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return the closest choice to ``word``, or None when nothing is close."""
    matches = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_choice_message(kind: str, word: str, choices: Iterable[str]) -> str:
    """``Unknown method 'awk'. Did you mean 'awq'? Available: awq, int8, rtn``."""
    options = sorted(choices)
    guess = did_you_mean(word, options)
    text = f"Unknown {kind} {word!r}."
    if guess:
        text += f" Did you mean {guess!r}?"
    return f"{text} Available: {', '.join(options)}"
