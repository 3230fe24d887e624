"""The import graph of ``sen2core``, ``tasks`` and ``flows`` follows the layering of issue #17.

Every module is parsed with :mod:`ast` (nothing is imported), and its imports are read at module level,
inside functions, under ``if TYPE_CHECKING:`` and through ``importlib.import_module("literal")``. Rules:

(a) no import loop between modules, nor between the sub-packages of one package (``kernels/`` and
    ``atmosphere/`` importing each other through different modules is a loop too);
(b) no ``_private`` name imported from another module, by ``from m import _x`` or as ``m._x``, and no
    ``_private`` module imported from outside the package that holds it;
(c) imports only downward in :data:`LAYERS`: a module imports modules of its own layer or of lower ones;
(d) the library (``sen2core`` but ``sen2core.cli``) never imports Prefect, and ``sen2core.cli`` imports
    Prefect, ``tasks`` and ``flows`` only inside functions, so that the command line starts without them.

Run ``python tests/test_architecture.py`` to print the violations of the tree, ``--layers`` to print the
layer table as Markdown.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sen2core", "tasks", "flows")


@dataclass(frozen=True)
class Layer:
    """One layer of the import graph: the modules it holds may import only its own and lower layers."""

    level: int
    name: str
    modules: tuple[str, ...]
    """Modules or packages; a package covers every module below it. ``x.__init__`` means the package file alone."""


# The layer table of issue #17, low to high (ARCHITECTURE.md cites it). A `sen2core` module that no entry
# covers is in layer 0: a small utility that imports nothing of the project but `sen2core.errors`.
LAYERS: tuple[Layer, ...] = (
    Layer(0, "errors and small pure utilities", ("sen2core.errors", "sen2core.parallel", "sen2core.stopwatch")),
    Layer(1, "kernels: pure numpy/dask functions of arrays, with the LUT value types they use", ("sen2core.kernels",)),
    Layer(2, "atmosphere: LUT loading and building, 6S, SRFs, profiles", ("sen2core.atmosphere",)),
    Layer(3, "config and settings: dataclasses and validation", ("sen2core.config", "sen2core.settings")),
    Layer(4, "io: read/ (inputs), write/ (outputs), stac/", ("sen2core.io",)),
    Layer(5, "synthetic: the scene generator (test and demo input)", ("sen2core.synthetic",)),
    Layer(
        6,
        "stage logic",
        (
            "sen2core.scl",
            "sen2core.correction",
            "sen2core.lazy",
            "sen2core.package",
            "sen2core.stages",
            "sen2core.run",
        ),
    ),  # fmt: skip
    Layer(
        7,
        "pipeline and the library's entry points",
        ("sen2core.pipeline", "sen2core.load", "sen2core.settings_docs", "sen2core.__init__"),
    ),  # fmt: skip
    Layer(8, "tasks: Prefect tasks", ("tasks",)),
    Layer(9, "flows: Prefect flows", ("flows",)),
    Layer(10, "command line (imports tasks and flows inside functions)", ("sen2core.cli", "sen2core.__main__")),
)
LIBRARY = "sen2core"
CLI = "sen2core.cli"
PREFECT = ("prefect", "prefect_dask")
# Package metadata: the root package file is run before any of its modules, so taking its version is no dependency.
METADATA = ("__version__",)
ORCHESTRATION = ("tasks", "flows")


@dataclass(frozen=True)
class Module:
    name: str
    """Import name: ``sen2core.io`` for ``sen2core/io/__init__.py``."""
    key: str
    """File name in dotted form, as :data:`LAYERS` names it: ``sen2core.io.__init__``."""
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    """The project module imported, or for a third-party import its dotted name as written."""
    name: str | None
    """The name taken by ``from target import name``; None for ``import target``."""
    line: int
    lazy: bool
    """Inside a function: runs only when the function is called."""
    internal: bool

    @property
    def depends(self) -> bool:
        """A dependency of one project module on another (not the package metadata of a root package)."""
        metadata = "." not in self.target and self.name in METADATA
        return self.internal and self.target != self.source and not metadata


def find_modules(root: Path, packages: Sequence[str]) -> dict[str, Module]:
    """Every ``.py`` file under the packages, by import name."""
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, ".".join(parts), path, is_package)
    return modules


def _owner(dotted: str, modules: dict[str, Module]) -> str | None:
    """The project module that ``import dotted`` reaches: ``dotted`` or its nearest parent that exists."""
    while dotted:
        if dotted in modules:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


class _ImportVisitor(ast.NodeVisitor):
    """Collects the imports of one module, and ``alias._name`` uses of imported project modules."""

    def __init__(self, module: Module, modules: dict[str, Module]) -> None:
        self.module = module
        self.modules = modules
        self.edges: list[Edge] = []
        self.aliases: dict[str, str] = {}  # local name -> project module it is bound to
        self.attributes: list[tuple[str, str, int]] = []  # (module, private attribute, line)
        self.depth = 0

    def _add(self, target: str, name: str | None, line: int) -> None:
        owner = _owner(target, self.modules)
        self.edges.append(Edge(self.module.name, owner or target, name, line, self.depth > 0, owner is not None))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, None, node.lineno)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                head = alias.name.partition(".")[0]
                self.aliases[head] = head

    def _base(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        # A package's own file is inside the package: one dot means the package itself.
        parts = self.module.name.split(".")
        if not self.module.is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - node.level + 1]
        return ".".join([*parts, node.module] if node.module else parts)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node)
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in self.modules:
                self._add(full, None, node.lineno)
                self.aliases[alias.asname or alias.name] = full
            else:
                self._add(base, alias.name, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if called == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not arg.value.startswith("."):
                self._add(arg.value, None, node.lineno)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _is_private(node.attr):
            chain: list[str] = []
            value: ast.expr = node.value
            while isinstance(value, ast.Attribute):
                chain.insert(0, value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in self.aliases:
                dotted = ".".join([self.aliases[value.id], *chain])
                if dotted in self.modules:
                    self.attributes.append((dotted, node.attr, node.lineno))
        self.generic_visit(node)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclass(frozen=True)
class Graph:
    root: Path
    modules: dict[str, Module]
    edges: tuple[Edge, ...]
    attributes: tuple[tuple[str, str, str, int], ...]
    """``module._private`` uses: (user, module, attribute, line)."""

    def where(self, module: str, line: int) -> str:
        return f"{self.modules[module].path.relative_to(self.root).as_posix()}:{line}"


def scan(root: Path, packages: Sequence[str] = PACKAGES) -> Graph:
    """Parse every module of ``packages`` under ``root`` and collect its imports."""
    modules = find_modules(root, packages)
    edges: list[Edge] = []
    attributes: list[tuple[str, str, str, int]] = []
    for module in modules.values():
        visitor = _ImportVisitor(module, modules)
        visitor.visit(ast.parse(module.path.read_text(encoding="utf-8"), str(module.path)))
        edges.extend(visitor.edges)
        attributes.extend((module.name, m, a, line) for m, a, line in visitor.attributes)
    return Graph(root, modules, tuple(edges), tuple(attributes))


def _components(nodes: Sequence[str], successors: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(successors.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(successors.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _cycle(component: list[str], successors: dict[str, set[str]]) -> list[str]:
    """One shortest cycle through the first node of a component, as a path that ends where it starts."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(successors.get(node, set()) & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def find_loops(graph: Graph) -> list[str]:
    """Rule (a): import loops between modules, then between the sub-packages (and modules) of a package."""
    successors: dict[str, set[str]] = {m: set() for m in graph.modules}
    first_line: dict[tuple[str, str], int] = {}
    for e in graph.edges:
        if e.depends:
            successors[e.source].add(e.target)
            first_line.setdefault((e.source, e.target), e.line)
    found = []
    for component in _components(sorted(graph.modules), successors):
        cycle = _cycle(component, successors)
        steps = ", ".join(graph.where(a, first_line[(a, b)]) for a, b in zip(cycle, cycle[1:], strict=False))
        others = "".join(f"; {m} is in this loop too" for m in component if m not in cycle)
        found.append(f"loop: {' -> '.join(cycle)} ({steps}{others})")
    # Folders: the children of one package, each standing for everything below it.
    for package in sorted(m for m, mod in graph.modules.items() if mod.is_package):
        depth = package.count(".") + 1
        children: dict[str, set[str]] = {}
        for e in graph.edges:
            if e.depends and _inside(e.source, package) and _inside(e.target, package):
                source, target = e.source.split("."), e.target.split(".")
                if len(source) > depth and len(target) > depth and source[depth] != target[depth]:
                    a, b = ".".join(source[: depth + 1]), ".".join(target[: depth + 1])
                    children.setdefault(a, set()).add(b)
        for component in _components(sorted(children), children):
            if sum(c in graph.modules and graph.modules[c].is_package for c in component) > 1:
                cycle = _cycle(component, children)
                shown = [c + "/" if c in graph.modules and graph.modules[c].is_package else c for c in cycle]
                found.append(f"loop: {' -> '.join(shown)} (between folders)")
    return found


def find_private(graph: Graph) -> list[str]:
    """Rule (b): ``_private`` names taken from other modules, ``_private`` modules from outside their package."""
    found = []
    for e in graph.edges:
        if not e.internal:
            continue
        parts = e.target.split(".")
        for i, part in enumerate(parts):
            package = ".".join(parts[:i])
            if _is_private(part) and not _inside(e.source, package):
                found.append(f"private: {graph.where(e.source, e.line)} imports the private module {e.target}")
                break
        if e.name and _is_private(e.name) and e.target != e.source:
            found.append(f"private: {graph.where(e.source, e.line)} imports {e.target}.{e.name}")
    for user, module, attribute, line in graph.attributes:
        if module != user:
            found.append(f"private: {graph.where(user, line)} uses {module}.{attribute}")
    return found


def layer_of(module: Module, layers: Sequence[Layer] = LAYERS) -> Layer:
    """The layer of a module: the entry of :data:`LAYERS` that names it most closely, else layer 0."""
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for entry in layer.modules:
            if module.key == entry or _inside(module.name, entry) and not entry.endswith(".__init__"):
                if best is None or len(entry) > best[0]:
                    best = (len(entry), layer)
    if best is not None:
        return best[1]
    return next(layer for layer in layers if layer.level == 0)


def find_upward(graph: Graph, layers: Sequence[Layer] = LAYERS) -> list[str]:
    """Rule (c): imports of a higher layer than the importer's own."""
    names: dict[tuple[str, int, str], list[str]] = {}
    for e in graph.edges:
        if e.depends:
            names.setdefault((e.source, e.line, e.target), []).extend([e.name] if e.name else [])
    found = []
    for (source, line, target), taken in names.items():
        low, high = layer_of(graph.modules[source], layers), layer_of(graph.modules[target], layers)
        if high.level > low.level:
            what = f" ({', '.join(taken)})" if taken else ""
            found.append(
                f"upward: {graph.where(source, line)} imports {target}{what} "
                f"(layer {low.level} {low.name.partition(':')[0]} -> layer {high.level} {high.name.partition(':')[0]})"
            )
    return found


def find_prefect(graph: Graph, library: str = LIBRARY, cli: str = CLI) -> list[str]:
    """Rule (d): Prefect in the library; Prefect, tasks or flows imported by the command line at import time."""
    found = []
    for e in graph.edges:
        top = e.target.partition(".")[0]
        if not _inside(e.source, library):
            continue
        if _inside(e.source, cli):
            if not e.lazy and (top in PREFECT or top in ORCHESTRATION):
                found.append(f"prefect: {graph.where(e.source, e.line)} imports {e.target} at import time "
                             "(the command line imports Prefect, tasks and flows inside functions)")  # fmt: skip
        elif top in PREFECT:
            found.append(
                f"prefect: {graph.where(e.source, e.line)} imports {e.target} (the library never imports Prefect)"
            )
    return found


def violations(root: Path = ROOT, packages: Sequence[str] = PACKAGES, layers: Sequence[Layer] = LAYERS) -> list[str]:
    """Every violation of rules (a) to (d) in the tree under ``root``."""
    graph = scan(root, packages)
    return [*find_loops(graph), *find_private(graph), *find_upward(graph, layers), *find_prefect(graph)]


# ------------------------------------------------------------------------------------------- the rules


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write a tiny package tree: {relative path: source}; every folder gets an ``__init__.py``."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        for folder in path.relative_to(root).parents[:-1]:
            (root / folder / "__init__.py").touch()
    return root


TOY_LAYERS = (
    Layer(0, "base", ("app.base",)),
    Layer(1, "low: the bottom", ("app.low",)),
    Layer(2, "high: the top", ("app.high", "app.__init__")),
)


def test_a_loop_through_a_function_level_import_is_reported_with_its_cycle(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "app/x.py": "import app.y\n",
        "app/y.py": "def f():\n    from app.z import g\n    return g\n",
        "app/z.py": "from . import x\n",
        "app/w.py": "import app.x\n",
    })  # fmt: skip
    assert find_loops(scan(tmp_path, ["app"])) == [
        "loop: app.x -> app.y -> app.z -> app.x (app/x.py:1, app/y.py:2, app/z.py:1)"
    ]


def test_one_way_imports_are_no_loop(tmp_path: Path) -> None:
    write_tree(tmp_path, {"app/x.py": "import app.y\n", "app/y.py": "from app import z\n", "app/z.py": "import os\n"})
    assert find_loops(scan(tmp_path, ["app"])) == []


def test_folders_importing_each_other_through_different_modules_are_a_loop(tmp_path: Path) -> None:
    # No module loop: p.m -> q.n and q.k -> p.j; but p/ and q/ need each other.
    write_tree(tmp_path, {
        "app/p/m.py": "from app.q.n import f\n",
        "app/p/j.py": "J = 1\n",
        "app/q/n.py": "def f():\n    return 1\n",
        "app/q/k.py": "from app.p.j import J\n",
    })  # fmt: skip
    assert find_loops(scan(tmp_path, ["app"])) == ["loop: app.p/ -> app.q/ -> app.p/ (between folders)"]


def test_private_names_and_modules_across_modules_are_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "app/config.py": "def _parse(): ...\ndef parse(): ...\n_LOCAL = 1\n",
        "app/a.py": "from app.config import _parse, parse\n",
        "app/b.py": "from app import config\n\ndef f():\n    return config._LOCAL\n",
        "app/c.py": "import app.config\nX = app.config.parse()\nY = app.config._parse\n",
        "app/io/_xml.py": "def load(): ...\n",
        "app/io/reader.py": "from ._xml import load\nfrom . import _xml\n",
        "app/d.py": "from app.io._xml import load\n",
        "app/e.py": "from app.config import __doc__\n",
    })  # fmt: skip
    assert sorted(find_private(scan(tmp_path, ["app"]))) == [
        "private: app/a.py:1 imports app.config._parse",
        "private: app/b.py:4 uses app.config._LOCAL",
        "private: app/c.py:3 uses app.config._parse",
        "private: app/d.py:1 imports the private module app.io._xml",
    ]


def test_imports_of_a_higher_layer_are_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "app/__init__.py": "from app.high.entry import run\n",
        "app/base.py": "import numpy\n",
        "app/util.py": "from app.base import X\n",
        "app/helper.py": "from app.low import k\n",
        "app/low/k.py": "from app import base\n\ndef f():\n    from ..high import entry\n",
        "app/low/m.py": "from app.low.k import f\nimport app\n",
        "app/low/dyn.py": "import importlib\nHIGH = importlib.import_module('app.high')\n",
        "app/high/entry.py": "from app.low.k import f\nfrom app.util import X\n",
    })  # fmt: skip
    assert sorted(find_upward(scan(tmp_path, ["app"]), TOY_LAYERS)) == [
        "upward: app/helper.py:1 imports app.low.k (layer 0 base -> layer 1 low)",  # unlisted: layer 0
        "upward: app/low/dyn.py:2 imports app.high (layer 1 low -> layer 2 high)",
        "upward: app/low/k.py:4 imports app.high.entry (layer 1 low -> layer 2 high)",
        "upward: app/low/m.py:2 imports app (layer 1 low -> layer 2 high)",  # the package file itself
    ]


def test_prefect_in_the_library_and_orchestration_imported_eagerly_by_the_cli_are_reported(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "sen2core/kernels/k.py": "def f():\n    import prefect\n",
        "sen2core/io/w.py": "from prefect_dask import get_dask_client\n",
        "sen2core/redact.py": "import prefecture\n",
        "sen2core/cli/flow.py": "import click\n\ndef run():\n    from prefect import flow\n    from flows.p import p\n",
        "sen2core/cli/eager.py": "from tasks.models import Options\nimport prefect\n",
        "tasks/models.py": "import prefect\n",
        "flows/p.py": "from prefect import flow\n",
    })  # fmt: skip
    assert sorted(find_prefect(scan(tmp_path, PACKAGES))) == [
        "prefect: sen2core/cli/eager.py:1 imports tasks.models at import time "
        "(the command line imports Prefect, tasks and flows inside functions)",
        "prefect: sen2core/cli/eager.py:2 imports prefect at import time "
        "(the command line imports Prefect, tasks and flows inside functions)",
        "prefect: sen2core/io/w.py:1 imports prefect_dask (the library never imports Prefect)",
        "prefect: sen2core/kernels/k.py:2 imports prefect (the library never imports Prefect)",
    ]


def test_the_layers_of_the_project_modules() -> None:
    modules = find_modules(ROOT, PACKAGES)
    levels = {name: layer_of(module).level for name, module in modules.items()}
    assert (levels["sen2core.errors"], levels["sen2core.kernels"], levels["sen2core.atmosphere"]) == (0, 1, 2)
    assert (levels["sen2core.config"], levels["sen2core.io"], levels["sen2core.synthetic"]) == (3, 4, 5)
    assert (levels["sen2core.scl"], levels["sen2core.pipeline"], levels["sen2core"]) == (6, 7, 7)
    assert (levels["tasks.models"], levels["flows.backfill"], levels["sen2core.cli.flow"]) == (8, 9, 10)
    assert levels["sen2core.redact"] == 0  # not listed: a utility


def test_the_scan_sees_the_real_imports() -> None:
    graph = scan(ROOT)
    assert len(graph.modules) > 80
    main = [e for e in graph.edges if e.source == "sen2core.__main__" and e.internal]
    assert [(e.target, e.name, e.lazy) for e in main] == [("sen2core.cli", "main", False)]
    lazy_flows = {e.target for e in graph.edges if e.source == "sen2core.cli.flow" and e.lazy and e.internal}
    assert "flows.process_product" in lazy_flows


def test_the_project_follows_the_layering() -> None:
    found = violations()
    assert found == [], "\n".join(found)


if __name__ == "__main__":
    if "--layers" in sys.argv[1:]:
        print("| layer | what | modules |\n|---|---|---|")
        for layer in LAYERS:
            print(f"| {layer.level} | {layer.name} | {', '.join(f'`{m}`' for m in layer.modules)} |")
        sys.exit(0)
    found = violations()
    print("\n".join(found) or "no violations")
    sys.exit(1 if found else 0)
