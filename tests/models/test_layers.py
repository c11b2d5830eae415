"""genaudio.models has no import cycle, not even one hidden in a function-local import."""
from __future__ import annotations

import ast
from pathlib import Path

import genaudio.models

PACKAGE = Path(genaudio.models.__file__).parent


def _imports(source: str) -> set[str]:
    """Modules of genaudio.models that ``source`` imports anywhere (top level or in a function)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "genaudio.models":
                out |= {f"genaudio.models.{a.name}" for a in node.names}
            elif node.module.startswith("genaudio.models."):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("genaudio.models.")}
    return out


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> list[str] | None:
        if m in path:
            return path[path.index(m):] + [m]
        if m in done:
            return None
        for dep in sorted(graph.get(m, ())):
            cycle = visit(dep, path + [m])
            if cycle:
                return cycle
        done.add(m)
        return None

    return next((c for c in (visit(m, []) for m in sorted(graph)) if c), None)


def test_models_import_graph_is_acyclic():
    mods = {f"genaudio.models.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {m: _imports(p.read_text()) & set(mods) for m, p in mods.items()}
    assert "genaudio.models.run" in graph["genaudio.models.train"]  # the parser sees the imports
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_a_cycle_through_a_function_local_import_is_found():
    a = "from genaudio.models.b import x\n"
    b = "def f():\n    from genaudio.models import a\n"
    graph = {"genaudio.models.a": _imports(a), "genaudio.models.b": _imports(b)}
    assert _find_cycle(graph) == ["genaudio.models.a", "genaudio.models.b", "genaudio.models.a"]
