"""Tests that need a real external tool (llama.cpp's build, llm-compressor's venv, PostgreSQL,
Chromium, actionlint): skipped with the reason on a developer's machine that lacks it, a failure in
CI (``CI=true``), where ``.ci/run`` installs or builds it — so those tests can never silently stop running."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str, *, module: bool = False) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason}; CI must run these tests (.ci/run installs what they need)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
