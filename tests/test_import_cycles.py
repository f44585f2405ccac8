"""No import cycles inside the package, lazy (function-level) imports included.

Every module of src/neuralinv is parsed (not imported); each ``import neuralinv.x`` /
``from neuralinv.x import y`` / ``from .x import y`` / ``from . import x`` anywhere in it, at
module level or inside a function, is an edge to the module it names (``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to the package ``pkg``). Importing a
submodule also runs its package's ``__init__``; that implicit edge is not counted (every module
would then reach the package root), only imports the code writes. A lazy import that breaks a
cycle at run time is still a cycle of the design, so it fails here. Imports under
``if TYPE_CHECKING:`` never run and name types only: not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "neuralinv"
PACKAGE = "neuralinv"


def module_names() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` (at ``path``) imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]  # the importing package
    targets: set[str] = set()
    for node in _walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    targets.add(_existing(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not (mod == PACKAGE or mod.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                targets.add(sub if sub in modules else _existing(mod, modules))
    targets.discard(name)
    return targets


def _walk(tree: ast.AST):
    """``ast.walk`` without the bodies of ``if TYPE_CHECKING:`` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None) if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _existing(name: str, modules: dict[str, Path]) -> str:
    """``name`` or its closest enclosing package that is a module of the tree."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, as module paths ``[a, b, ..., a]``: for each import edge u -> v that
    lies on a cycle, the shortest one through it (so every edge of every cycle is named),
    rotated to start at its smallest module, duplicates removed, sorted."""
    found = set()
    for u in sorted(graph):
        for v in sorted(graph[u]):
            back = _shortest_path(graph, v, u)
            if back is None:
                continue
            ring = [u] + back[:-1]  # u -> v -> ... -> (before u)
            k = ring.index(min(ring))
            found.add(tuple(ring[k:] + ring[:k] + [ring[k]]))
    return sorted(list(c) for c in found)


def _shortest_path(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            if v == goal:
                return paths[v]
            for w in sorted(graph.get(v, ())):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return None


def test_the_graph_sees_lazy_and_relative_imports():
    # Checks the checker: function-level, relative, "from . import submodule" imports.
    graph = import_graph()
    assert "neuralinv.methods.lu" in graph["neuralinv.methods"]  # from .lu import LU
    assert "neuralinv.kernels.native" in graph["neuralinv.methods.native"]  # from ..kernels import native
    assert "neuralinv.files" in graph["neuralinv.bench.output"]  # inside plot(): from ..files import atomic_write
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": {"b"}}) == [["a", "b", "a"], ["b", "c", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    message = "\n".join("  " + " -> ".join(m.removeprefix(PACKAGE + ".") for m in c) for c in found)
    assert not found, f"{len(found)} import cycle(s) inside the package:\n{message}"
