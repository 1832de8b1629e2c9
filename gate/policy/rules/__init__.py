"""Built-in rules, discovered from this package: one module per rule, named by its id
(``qg101_constraint_declared.py``), each defining exactly one ``Rule`` subclass."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from gate.policy.rule import Rule


@cache
def builtin_rules() -> dict[str, type[Rule]]:
    """rule id -> rule class, sorted by id."""
    found: dict[str, type[Rule]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule and value.__module__ == module.__name__:
                if value.id in found:
                    raise RuntimeError(f"duplicate rule id {value.id} in {module.__name__}")
                found[value.id] = value
    return dict(sorted(found.items()))
