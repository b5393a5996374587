"""The packages of `gateway` import one another without cycles (docs/architecture.md, Where each concern lives).

Read from the source, not by importing it: an edge is a module-level import from one package of `gateway` into
another (imports inside a function, or under TYPE_CHECKING, load nothing at import time and are left out). The
graph must have no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "python" / "gateway"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imported(path: Path, module: str, body: list[ast.stmt]) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _imported(path, module, getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _imported(path, module, handler.body)


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> 'module -> module' examples."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = _module(path)
        for name in _imported(path, module, ast.parse(path.read_text()).body):
            if not name.startswith("gateway."):
                continue
            edge = (_package(module), _package(name))
            if edge[0] and edge[1] and edge[0] != edge[1]:
                edges.setdefault(edge, []).append(f"{module} -> {name}")
    return edges


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in graph[node]:
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_packages_import_one_another_without_cycles() -> None:
    edges = package_edges()
    found = cycles(set(edges))
    details = {edge: examples[:2] for edge, examples in edges.items() if any(set(edge) <= set(c) for c in found)}
    assert not found, f"package cycles {found}, through {details}"


def test_the_check_finds_a_cycle() -> None:
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert cycles({("a", "b"), ("b", "c")}) == []
