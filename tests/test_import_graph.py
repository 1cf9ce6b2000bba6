"""No import circle between the engine's modules: study, executors, samplers, pruners.

The static check reads every ``import`` of the package (module level and inside
functions, which is where circles hide; ``if TYPE_CHECKING:`` blocks excepted) and
asserts that the graph among the engine's modules has no cycle.  The dynamic check
imports each engine module first, in a fresh interpreter, then the rest in forward and
reverse order.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hpcore

# The package that is imported: src/hpcore in a checkout, site-packages/hpcore from a wheel.
PKG = Path(hpcore.__file__).resolve().parent
SRC = PKG.parent
ENGINE = ("hpcore.study", "hpcore.storage", "hpcore.trial", "hpcore.space",
          "hpcore.executors", "hpcore.samplers", "hpcore.pruners")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit_stmt(sub)
                continue
            visit_stmt(child)

    def visit_stmt(node):
        if isinstance(node, ast.Import):
            for a in node.names:
                found.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            found.add(base)
            for a in node.names:
                found.add(f"{base}.{a.name}")
        visit(node)

    visit(tree)
    return {m for m in found if m in known and m != name}


def _in_engine(mod: str) -> bool:
    return any(mod == e or mod.startswith(e + ".") for e in ENGINE)


def test_no_import_cycle_among_engine_modules():
    mods = _modules()
    known = set(mods)
    graph = {m: {d for d in _imports(m, p, known) if _in_engine(d)}
             for m, p in mods.items() if _in_engine(m)}
    # a package's __init__ re-exporting its submodules is not a circle: drop parent edges
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    assert "hpcore.executors" in graph["hpcore.study"]          # the study picks executors
    assert not any(d.startswith("hpcore.study") for m, ds in graph.items()
                   if m.startswith(("hpcore.executors", "hpcore.samplers", "hpcore.pruners"))
                   for d in ds)


_FRESH = """
import importlib, sys
order = sys.argv[1:]
for name in order:
    importlib.import_module(name)
import hpcore
assert hpcore.Study is importlib.import_module("hpcore.study").Study
print("ok")
"""


@pytest.mark.parametrize("first", ["hpcore.study", "hpcore.executors", "hpcore.executors.local",
                                   "hpcore.executors._dispatch", "hpcore.samplers.bayes",
                                   "hpcore.samplers._fidelity", "hpcore.pruners.halving",
                                   "hpcore.pruners.base", "hpcore.space", "hpcore.trial"])
def test_each_module_imports_first_in_a_fresh_interpreter(first):
    rest = ["hpcore.study", "hpcore.executors.dask", "hpcore.samplers.genetic",
            "hpcore.pruners.median", "hpcore.storage"]
    for order in ([first] + rest,) if first != "hpcore.study" else ([first] + rest, [first] + rest[::-1]):
        out = subprocess.run([sys.executable, "-c", _FRESH, *order], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
