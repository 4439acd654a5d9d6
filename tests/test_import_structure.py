"""The import structure of eosdsl (the spec layer stands alone; read-only commands start fast).

- The spec layer stands alone: importing the spec models, the loader and the JSON schema imports neither
  jax nor flax (network configs come from the jax-free :mod:`eosdsl.models.configs`; the semantic
  checks, which compile and evaluate expressions with jax, are imported on the first validation).
- No package-level import cycle among eosdsl's subpackages: the graph of *module-level* imports between
  the top-level units of ``eosdsl`` (its subpackages and top-level modules) is acyclic. Imports inside
  functions (deliberately lazy ones) and under ``if TYPE_CHECKING:`` do not run at import time and are
  not edges.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "eosdsl"

KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {}
"""Edges of the unit graph that close a cycle not yet broken, each with the issue that tracks it. Every
other edge must keep the graph acyclic; keep this empty where possible (never silence the test broadly)."""


def test_spec_layer_imports_neither_jax_nor_flax() -> None:
    probe = (
        "import json, sys\n"
        "import eosdsl.spec.models, eosdsl.spec.load, eosdsl.spec.schema\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'flax'})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_model_configs_validate_without_jax() -> None:
    """``make_config`` (what spec validation calls) runs, errors included, without importing jax."""
    probe = (
        "import sys\n"
        "from eosdsl.models.configs import make_config\n"
        "make_config('mlp', in_dim=4, widths=(3,), activation='tanh', init='ntk')\n"
        "make_config('resnet20', widths=(4, 8), blocks_per_stage=1)\n"
        "try:\n"
        "    make_config('cnn', activation='nope')\n"
        "except ValueError as err:\n"
        "    print(err)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'flax'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300, check=True
    )
    message, heavy = done.stdout.strip().splitlines()[-2:]
    assert message.startswith("unknown activation 'nope'")
    assert heavy == "[]"


# ------------------------------------------------------------------------------------- the unit graph


def _unit(module: str) -> str | None:
    """``eosdsl.spec.load`` → ``spec``; ``None`` outside eosdsl (and for ``eosdsl`` itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "eosdsl" else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, int]]:
    """``(imported module, line)`` of every import that runs when ``module`` is imported: at module level,
    in class bodies and in ``if``/``try``/``with`` blocks, but not in functions nor under
    ``if TYPE_CHECKING:``. ``from a import b`` yields ``a`` and ``a.b`` (``b`` may be a submodule)."""
    found: list[tuple[str, int]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                visit(stmt.orelse)
                continue
            if isinstance(stmt, ast.Import):
                found.extend((alias.name, stmt.lineno) for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                if stmt.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - (stmt.level - 1)]
                    source = ".".join([*base, *([stmt.module] if stmt.module else [])])
                else:
                    source = stmt.module or ""
                found.append((source, stmt.lineno))
                found.extend((f"{source}.{alias.name}", stmt.lineno) for alias in stmt.names)
            for field in ("body", "orelse", "finalbody"):
                visit(getattr(stmt, field, None) or [])
            for handler in getattr(stmt, "handlers", None) or []:
                visit(handler.body)

    visit(tree.body)
    return found


def _unit_graph() -> dict[tuple[str, str], list[str]]:
    """``(unit, unit) → ["eosdsl/x/y.py:line", …]``: the module-level imports between eosdsl's units."""
    units = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        source = _unit(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for imported, line in _module_level_imports(tree, module, is_package):
            target = _unit(imported)
            if target is not None and target != source and target in units:
                where = f"{path.relative_to(ROOT)}:{line}"
                if where not in edges.setdefault((source, target), []):
                    edges[(source, target)].append(where)
    return edges


def _find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """One cycle ``[a, b, …, a]`` of the directed graph, or ``None`` if it is acyclic."""
    successors: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        successors.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in successors.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(successors):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle_between_subpackages() -> None:
    graph = _unit_graph()
    stale = sorted(set(KNOWN_CYCLE_EDGES) - set(graph))
    assert not stale, f"known cycle edges no longer present (remove them from KNOWN_CYCLE_EDGES): {stale}"
    for edge, why in KNOWN_CYCLE_EDGES.items():
        print(f"known exception: {edge[0]} -> {edge[1]} ({why}) at {', '.join(graph[edge])}")
    cycle = _find_cycle(set(graph) - set(KNOWN_CYCLE_EDGES))
    if cycle is not None:
        steps = [
            f"  {a} -> {b}  ({', '.join(graph[(a, b)][:3])})" for a, b in zip(cycle, cycle[1:], strict=False)
        ]
        raise AssertionError("module-level import cycle between eosdsl subpackages:\n" + "\n".join(steps))


def test_the_cycle_finder_finds_cycles() -> None:
    """The checker itself: a known cycle is reported with its path, an acyclic graph passes."""
    assert _find_cycle({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == ["a", "b", "c", "a"]
    assert _find_cycle({("spec", "problems"), ("problems", "spec")}) == ["problems", "spec", "problems"]
    assert _find_cycle({("a", "b"), ("b", "c"), ("a", "c")}) is None


def test_the_graph_sees_module_level_imports_only() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import eosdsl.spec.models\n"
        "from eosdsl.problems import losses\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n"
        "    from eosdsl.engine import run\n"
        "try:\n"
        "    from eosdsl.data import images\n"
        "except ImportError:\n"
        "    from eosdsl.cache import x\n"
        "class C:\n"
        "    from eosdsl.optim import optimizers\n"
        "def f():\n"
        "    from eosdsl.problems import build\n"
    )
    found = {name for name, _ in _module_level_imports(ast.parse(source), "eosdsl.cli.common", False)}
    units = {_unit(name) for name in found} - {None}
    assert units == {"spec", "problems", "cli", "data", "cache", "optim"}
