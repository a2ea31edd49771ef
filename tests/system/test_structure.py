"""The shape of the package: folders are layers, each importing only those below it; the
read side apart from the live run; no cycles; small modules; one seam per engine.

Read from the source with ``ast``, so imports inside functions (lazy imports) count too.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sqltrack"
MAX_LINES = 450

#: the layers, bottom first: a module imports only modules of its own layer or below
LAYERS = [
    ("base", ("sqltrack.errors", "sqltrack.args", "sqltrack._version", "sqltrack._base")),
    ("database", ("sqltrack._db",)),
    ("write", ("sqltrack._write",)),
    ("read", ("sqltrack._read",)),
    ("live run", ("sqltrack._live",)),
    ("administration", ("sqltrack._admin",)),
    # other trackers' runs brought in (each source imports its tool when an import runs)
    ("import", ("sqltrack._import",)),
    # the dashboard's web app (imports its framework; the command line imports it lazily)
    ("dashboard", ("sqltrack.ui",)),
    ("command line", ("sqltrack.cli",)),
    # each module imports its framework; nothing below imports them
    ("integrations", ("sqltrack.integrations",)),
    ("face", ("sqltrack", "sqltrack.__main__")),
]
#: the modules a user may import by name; every other one is internal (a ``_`` in its path)
PUBLIC = (
    "sqltrack", "sqltrack.errors", "sqltrack.args", "sqltrack.__main__", "sqltrack.cli",
    "sqltrack.ui",
)  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(name: str) -> int:
    """The index of the layer a module belongs to (its longest matching prefix)."""
    best, found = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), i
    assert found is not None, f"{name} is in no layer"
    return found


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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (depth-first, the first one found from each start)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            found.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a layer above its own."""
    return [
        f"{name} ({LAYERS[layer(name)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer(target) > layer(name)
    ]


def read_side_imports_live(graph: dict[str, set[str]]) -> list[str]:
    """Imports of the live run (tracking, buffer, spool...) by the read side: reading a
    database never needs a running job's machinery."""
    return [
        f"{name} imports {target}"
        for name, targets in sorted(graph.items())
        if name.startswith("sqltrack._read")
        for target in sorted(targets)
        if target.startswith("sqltrack._live")
    ]


def test_no_import_cycles() -> None:
    assert cycles(GRAPH) == []


def test_each_layer_imports_only_those_below() -> None:
    assert upward(GRAPH) == []


def test_the_read_side_never_imports_the_live_run() -> None:
    assert read_side_imports_live(GRAPH) == []


def test_the_checks_can_fail() -> None:
    """Each check, given an import that must not be, finds it."""
    injected = {k: set(v) for k, v in GRAPH.items()}
    injected["sqltrack.errors"].add("sqltrack._write.runs")
    injected["sqltrack._write.runs"].add("sqltrack.errors")
    assert cycles(injected) and upward(injected)
    injected = {k: set(v) for k, v in GRAPH.items()}
    injected["sqltrack._read.search"].add("sqltrack._live.buffer")
    assert read_side_imports_live(injected) and upward(injected)


def test_every_module_has_a_layer_and_internal_ones_are_marked() -> None:
    for name in MODULES:
        layer(name)
        public = name in PUBLIC or name.startswith(("sqltrack.cli.", "sqltrack.integrations"))
        assert public or "._" in name, f"{name} is internal but not marked with _"


def _declares_all(tree: ast.Module) -> bool:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def test_all_lives_in_the_public_modules_only() -> None:
    for name, path in MODULES.items():
        if name not in PUBLIC:
            internal = not _declares_all(ast.parse(path.read_text()))
            assert internal, f"{name} is internal: sqltrack exports its public names"


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
    owners = {"psycopg": "sqltrack._db.engines.postgres", "sqlite3": "sqltrack._db.engines.sqlite"}
    for name in MODULES:
        for driver in _driver_imports(name):
            # (the engine's module, or one of its own: postgres_roles)
            assert name.startswith(owners[driver]), f"{name} imports {driver}"


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
        if not name.startswith("sqltrack._db.engines"):
            assert not _engine_names_used(name), f"{name} names an engine"


def test_import_sqltrack_does_not_import_a_driver() -> None:
    import subprocess

    code = "import sys, sqltrack; print(sorted({'psycopg', 'sqlite3'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _code_map() -> dict[str, int]:
    """Module -> row of the code map in docs/architecture.md (top row 0)."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    table = text.split("## Code map", 1)[1]
    rows: dict[str, int] = {}
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    for i, line in enumerate(lines):
        for cell in re.findall(r"`([\w/]+?\.py)`", line.split("|")[1]):
            module = "sqltrack." + cell.removesuffix(".py").replace("/", ".")
            rows[module.removesuffix(".__init__")] = i
    return rows


def test_the_code_map_lists_every_module_each_below_what_imports_it() -> None:
    rows = _code_map()
    for name in MODULES:
        assert name in rows, f"{name} is missing from the code map in docs/architecture.md"
    for name, targets in GRAPH.items():
        for target in targets:
            assert rows[target] >= rows[name], f"{name} imports {target}, which the map puts above"


#: ``sqltrack.a.b`` in the package's text (docstrings, comments; not a repr's ``<sqltrack.Run``)
_REFERENCE = re.compile(r"(?<![\w./<-])sqltrack(?:\.[A-Za-z_]\w*)+")
#: file names that look like references
_NOT_REFERENCES = {"sqltrack.db", "sqltrack.conf", "sqltrack.conf.example"}


def _resolves(reference: str) -> bool:
    import importlib

    parts = reference.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        if name not in MODULES:
            continue
        if name.startswith("sqltrack.integrations."):  # importing one imports its framework
            return i == len(parts) or parts[i] in MODULES[name].read_text()
        target: object = importlib.import_module(name)
        for attribute in parts[i:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_reference_to_a_module_or_object_in_the_package_resolves() -> None:
    """A docstring's ``:mod:`sqltrack.spool``` outlives a move only if someone updates it."""
    stale = sorted(
        f"{path.relative_to(PACKAGE.parent)}: {ref}"
        for path in MODULES.values()
        for ref in set(_REFERENCE.findall(path.read_text()))
        if ref.rstrip(".") not in _NOT_REFERENCES and not _resolves(ref.rstrip("."))
    )
    assert not stale, "references to modules or objects that do not exist:\n" + "\n".join(stale)
    assert not _resolves("sqltrack.spool.spool_dir")  # the check can fail
