"""The one-way flow of the package, read from the source: trace -> ir -> workload and
pruning -> targets -> engine -> report -> cli (docs/architecture.md).

Every ``import`` statement counts, the ones inside functions too: a lazy import
hides a circle from the interpreter, not from the design (a module that must import
another lazily because that one imports it back is one component in two files)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hwsim"


def _imports() -> dict[str, dict[str, set[str]]]:
    """Per top-level part of hwsim (a subpackage or a module), the other parts it
    imports, each with the files that do."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        here = parts if is_pkg else parts[:-1]  # the package a relative import starts in
        top = parts[1] if len(parts) > 1 else ""
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                names = [f"{name}.{a.name}" for a in node.names] if "." not in name else [name]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for n in names:
                bits = n.split(".")
                if bits[0] == "hwsim" and len(bits) > 1 and bits[1] != top:
                    out[top][bits[1]].add(str(path.relative_to(PACKAGE.parent)))
    return out


def _circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected parts of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def imports():
    return _imports()


def test_the_scan_sees_imports_at_every_level(imports):
    """The scan finds the lazy imports too (else the tests below could not fail):
    hwsim.api imports hwsim.generation only inside a function."""
    assert "generation" in imports["api"]
    assert "pruning" in imports["workload"] and "ir" in imports["pruning"]


def test_no_import_circle_between_the_parts_of_hwsim(imports):
    edges = {a: set(b) for a, b in imports.items()}
    circles = _circles(edges)
    assert not circles, "; ".join(
        " <-> ".join(sorted(c)) + ": " + ", ".join(
            f"{a} -> {b} ({', '.join(sorted(imports[a][b]))})"
            for a in sorted(c) for b in sorted(imports[a]) if b in c)
        for c in circles)


@pytest.mark.parametrize("part, never", [
    # the engine knows no machine, no graph and no workload
    ("engine", {"accelerators", "targets", "ir", "workload", "pruning", "simulate", "report",
                "cli", "trace"}),
    # the IR is the bottom: everything reads it, it reads nothing of theirs
    ("ir", {"accelerators", "targets", "engine", "workload", "pruning", "simulate",
            "report", "cli", "trace", "zoo", "moe"}),
    # the tracers make graphs and score files; they prune nothing and load no workload
    ("trace", {"pruning", "workload", "targets", "accelerators", "engine", "simulate",
               "report", "cli"}),
    # pruning transforms graphs; the workload file that names its steps sits above it
    ("pruning", {"workload", "targets", "accelerators", "engine", "simulate", "report",
                 "cli"}),
    ("report", {"simulate", "generation", "serving", "cli", "sweep", "api"}),
    # the simulation's pieces know neither the front door nor what runs on them
    ("simulate", {"api", "generation", "serving", "sweep", "cli", "validate"}),
])
def test_the_flow_runs_one_way(imports, part, never):
    wrong = {b: sorted(files) for b, files in imports[part].items() if b in never}
    assert not wrong, f"hwsim.{part} imports {wrong}"
