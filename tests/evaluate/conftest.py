"""Fixtures shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def loaded(tiny_llama_dir: Path) -> tuple[Any, Any]:
    """The tiny Llama loaded for evaluation: (model, tokenizer), once per test module."""
    from gate.quantize import load_for_eval

    return load_for_eval(tiny_llama_dir)
