"""The shape of the package: layers without cycles, small modules, one seam per engine.

Read from the source with ``ast``, so imports inside functions (lazy imports) count too.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sqltrack"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The sqltrack modules that ``name`` imports, anywhere in its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    # a module imports its parent packages on the way; that is not a dependency
    return {t for t in found if not name.startswith(t + ".")}


GRAPH = {name: _imports(name) for name in MODULES}


def test_no_import_cycles() -> None:
    """Depth-first search over every import, lazy ones included."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if name in done:
            return
        for target in sorted(GRAPH[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in MODULES:
        visit(name, [])


def test_the_cycle_check_can_fail() -> None:
    GRAPH["sqltrack.errors"].add("sqltrack.runs")
    try:
        with pytest.raises(pytest.fail.Exception, match="import cycle"):
            test_no_import_cycles()
    finally:
        GRAPH["sqltrack.errors"].discard("sqltrack.runs")


def test_handles_sit_above_the_functions() -> None:
    """The function modules never import the handles or the tracking lifecycle back
    (search returns handles: it sits above them, and the report above search)."""
    above = {"sqltrack.handles", "sqltrack.tracking", "sqltrack.cli", "sqltrack", "sqltrack.search"}
    above |= {"sqltrack.report", "sqltrack.lifecycle"}
    for name, targets in GRAPH.items():
        if name not in above | {"sqltrack.__main__"}:
            assert not targets & above, f"{name} imports {targets & above}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES})"


def _driver_imports(name: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found & {"psycopg", "sqlite3"}


def test_only_each_engine_imports_its_driver() -> None:
    owners = {"psycopg": "sqltrack.engines.postgres", "sqlite3": "sqltrack.engines.sqlite"}
    for name in MODULES:
        for driver in _driver_imports(name):
            assert owners[driver] == name, f"{name} imports {driver}"


def _engine_names_used(name: str) -> list[str]:
    """String constants naming an engine, docstrings and comments aside."""
    tree = ast.parse(MODULES[name].read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and id(node) not in docstrings
        and isinstance(node.value, str)
        and node.value.lower() in ("postgres", "postgresql", "sqlite")
    ]


def test_no_module_outside_the_engines_names_an_engine() -> None:
    for name in MODULES:
        if not name.startswith("sqltrack.engines"):
            assert not _engine_names_used(name), f"{name} names an engine"


def test_import_sqltrack_does_not_import_a_driver() -> None:
    import subprocess

    code = "import sys, sqltrack; print(sorted({'psycopg', 'sqlite3'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _code_map() -> dict[str, int]:
    """Module -> row of the README's code map (top row 0); ``engines/`` stands for all."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("### Code map", 1)[1].split("\n\n", 2)[2]
    rows: dict[str, int] = {}
    for i, line in enumerate(table.splitlines()[2:]):
        if not line.startswith("|"):
            break
        for cell in re.findall(r"`([\w/]+?)(?:\.py|/)`", line.split("|")[1]):
            rows["sqltrack" if cell == "__init__" else f"sqltrack.{cell}"] = i
    return rows


def test_the_readme_code_map_lists_every_module_and_each_imports_only_below() -> None:
    rows = _code_map()

    def row(name: str) -> int:
        key = "sqltrack.engines" if name.startswith("sqltrack.engines") else name
        assert key in rows, f"{name} is missing from the README's code map"
        return rows[key]

    for name, targets in GRAPH.items():
        for target in targets:
            assert row(target) >= row(name), f"{name} imports {target}, which the map puts above"
