"""The import graph of ``gate/``: no circles, no import from a lower floor to a higher one.

The floors are listed once, here (``FLOORS``, bottom first); the README's architecture section
lists the same floors in the same order (a test below checks it). A floor holds units: a package
(``gate.policy``: it and every module in it), a module (``gate.errors``), a module inside a
package that sits lower than the rest of its package (``gate.quantize.registry``: the spec's JSON
Schema enum reads it), or a package's ``__init__`` alone (``=gate.serve``); a module belongs to the
unit that names it exactly, else to the longest package unit it is inside.

What counts (read with the standard library's ``ast``, nothing imported):

- module-level imports and imports inside functions (lazy imports) both count, for the floors and
  for circles: a lazy import is only a later one, and it still ties the two floors together;
- imports under ``if TYPE_CHECKING:`` do not: they never run, and a contract may name the types
  of the stage that implements it (``gate.serve.interface`` names ``gate.evaluate`` types);
- imports inside the same floor are allowed (there the no-circle test is the guard).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "gate"

FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("=gate", "gate.errors", "gate.suggest", "gate.descriptors", "gate.frozen", "gate.options", "gate.cache",
                    "gate.runtime", "gate.envs", "gate.report.progress")),
    ("descriptors", ("gate.quantize.descriptor", "gate.quantize.registry", "gate.quantize.interface",
                     "gate.plan.kernels", "=gate.serve", "gate.serve.interface")),
    ("spec", ("gate.spec",)),
    ("weights", ("gate.weights",)),
    ("plan", ("gate.plan",)),
    ("contract", ("gate.result", "gate.result_sections", "gate.engine_checks")),
    ("quantize", ("gate.quantize",)),
    ("verdict", ("gate.verdict",)),
    ("evaluate", ("gate.evaluate",)),
    ("serve", ("gate.serve",)),
    ("session", ("gate.evaluate.session",)),
    ("policy", ("gate.policy",)),
    ("ci", ("gate.ci", "gate.onboard")),
    ("report", ("gate.result_build", "gate.result_v1", "gate.report")),
    ("registry", ("gate.registry",)),
    ("pipeline", ("gate.pipeline", "gate.example", "gate.library_output")),
    ("entry", ("gate.commands", "gate.cli", "gate.data")),
)
"""Bottom first. ``serve`` sits between evaluate's measuring machinery (lm-eval harness, fidelity,
performance, suites, which a runtime drives through the model it serves) and the evaluation
session that asks a served model for scores; its descriptors sit below the spec, whose
``serving.runtime`` enum reads them, like the quantizers'. ``gate.data`` holds data and the
script that regenerates the shipped calibration set (an entry point of its own)."""


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    path: Path
    line: int
    lazy: bool

    def where(self) -> str:
        kind = " (lazy)" if self.lazy else ""
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} imports {self.target}{kind}"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(GATE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return inside


def _function_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
    return inside


def imports(known: dict[str, Path]) -> list[Import]:
    """Every import between two gate modules that runs (module level or lazy), resolved to the
    module it loads (``from gate.x import y`` is ``gate.x.y`` when that is a module)."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        type_only, in_function = _type_checking_nodes(tree), _function_nodes(tree)
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = resolve(name) if name.split(".")[0] == "gate" else None
                if target is not None and target != module:
                    found.append(Import(module, target, path, node.lineno, id(node) in in_function))
    return found


def floor_of(module: str) -> tuple[int, str]:
    """(floor index, unit) of a module: the unit naming it exactly (``=pkg`` or a module), else
    the longest package unit it is inside."""
    best: tuple[int, int, str] | None = None
    for index, (_name, units) in enumerate(FLOORS):
        for unit in units:
            name = unit.removeprefix("=")
            if module == name:
                rank = 10_000  # an exact name beats any package around it
            elif not unit.startswith("=") and module.startswith(name + "."):
                rank = len(name)
            else:
                continue
            if best is None or rank > best[1]:
                best = (index, rank, unit)
    if best is None:
        raise KeyError(module)
    return best[0], best[2]


KNOWN = modules()
IMPORTS = imports(KNOWN)


def test_every_module_has_a_floor() -> None:
    missing = []
    for module in KNOWN:
        try:
            floor_of(module)
        except KeyError:
            missing.append(module)
    assert missing == [], f"modules on no floor (add them to FLOORS in {Path(__file__).name}): {missing}"


def test_every_unit_exists() -> None:
    units = [unit for _name, floor in FLOORS for unit in floor]
    assert len(units) == len(set(units))
    assert [u for u in units if not any(m == u.removeprefix("=") or m.startswith(u + ".") for m in KNOWN)] == []


def upward(edges: list[Import]) -> list[str]:
    found = []
    for imp in edges:
        (low, _unit), (high, _target_unit) = floor_of(imp.source), floor_of(imp.target)
        if high > low:
            found.append(f"{imp.where()}: floor {FLOORS[low][0]} -> {FLOORS[high][0]}")
    return found


def test_no_import_runs_upward() -> None:
    found = upward(IMPORTS)
    assert found == [], "imports from a lower floor to a higher one:\n" + "\n".join(found)


def test_a_unit_inside_a_package_has_its_own_floor() -> None:
    names = [name for name, _units in FLOORS]
    assert floor_of("gate.serve") == (names.index("descriptors"), "=gate.serve")
    assert floor_of("gate.serve.interface") == (names.index("descriptors"), "gate.serve.interface")
    assert floor_of("gate.serve.a_new_runtime") == (names.index("serve"), "gate.serve")
    assert floor_of("gate.evaluate.session") == (names.index("session"), "gate.evaluate.session")
    assert floor_of("gate.evaluate.fidelity") == (names.index("evaluate"), "gate.evaluate")
    assert floor_of("gate") == (0, "=gate")
    assert floor_of("gate.quantize.awq") == (names.index("quantize"), "gate.quantize")
    lazy_up = Import("gate.verdict.decide", "gate.pipeline.exit", GATE / "verdict" / "decide.py", 7, True)
    assert upward([lazy_up]) == [
        "gate/verdict/decide.py:7: gate.verdict.decide imports gate.pipeline.exit (lazy): floor verdict -> pipeline"]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in edges:
        graph[imp.source].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle() -> None:
    found = cycles(IMPORTS)
    lines = []
    for component in found:
        members = set(component)
        lines.append(" <-> ".join(component))
        lines.extend("    " + imp.where() for imp in IMPORTS if imp.source in members and imp.target in members)
    assert found == [], "import circles:\n" + "\n".join(lines)


def test_cycle_finder_finds_a_circle_through_a_lazy_import() -> None:
    here = Path(__file__)
    edges = [Import("gate.a", "gate.b", here, 1, False), Import("gate.b", "gate.c", here, 2, True),
             Import("gate.c", "gate.a", here, 3, True), Import("gate.c", "gate.d", here, 4, False)]
    assert cycles(edges) == [["gate.a", "gate.b", "gate.c"]]


def test_imports_are_read_lazy_and_relative_but_not_type_only(tmp_path: Path) -> None:
    package = tmp_path / "gate"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "high.py").write_text(
        "from typing import TYPE_CHECKING\nfrom . import other\nif TYPE_CHECKING:\n    from gate import low\n"
        "def f():\n    from gate.low import x\n")
    (package / "sub" / "other.py").write_text("")
    known = {"gate": package / "__init__.py", "gate.low": package / "low.py", "gate.sub": package / "sub" / "__init__.py",
             "gate.sub.high": package / "sub" / "high.py", "gate.sub.other": package / "sub" / "other.py"}
    found = {(i.source, i.target, i.line, i.lazy) for i in imports(known)}
    assert found == {("gate.sub.high", "gate.sub.other", 2, False), ("gate.sub.high", "gate.low", 6, True)}


def test_readme_architecture_lists_the_floors_in_order() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([a-z]+) \|", section, flags=re.MULTILINE)
    assert [(int(n), name) for n, name in rows] == [(i + 1, name) for i, (name, _units) in enumerate(FLOORS)]


@pytest.mark.parametrize(("pattern", "where"), [
    (r"^class _?Frozen\(BaseModel\)", "gate/frozen.py"),
    (r"\"--repo-root\"", "gate/commands/__init__.py"),
])
def test_declared_once(pattern: str, where: str) -> None:
    """One frozen base for the gate's result types; one ``--repo-root`` option for every command."""
    hits = [str(path.relative_to(ROOT)) for path in sorted(GATE.rglob("*.py"))
            if re.search(pattern, path.read_text(encoding="utf-8"), flags=re.MULTILINE)]
    assert hits == [where]
