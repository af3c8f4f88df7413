"""The layout's rules, read from the source: who may import whom, no import cycles, no imports
hidden in functions, no names imported through a module that merely re-exports them, and each
of the agent's shape constants defined once (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# installed package -> source folder ([tool.setuptools.package-dir])
SOURCES = {"neurofx.strategies": "strategies", "neurofx.nn": "nn", "neurofx.kernels": "kernels",
           "neurofx.collectors": "collectors", "neurofx.reports": "reports", "neurofx": "neurofx"}
CORE = {"neurofx", "neurofx.errors", "neurofx.atomic", "neurofx.schema", "neurofx.deals",
        "neurofx.locks", "neurofx.cluster"}
# layer -> the layers it may import (besides itself); "core" = the modules in CORE
ALLOWED = {
    "core": set(),
    "neurofx.kernels": set(),
    "neurofx.nn": {"core"},
    "neurofx.data": {"core"},
    "neurofx.collectors": {"core", "neurofx.data"},
    "neurofx.reports": {"core"},
    "neurofx.agents": {"core", "neurofx.nn"},
    "neurofx.strategies": {"core", "neurofx.data", "neurofx.collectors", "neurofx.agents",
                           "neurofx.nn"},
    "neurofx.study": {"core", "neurofx.data", "neurofx.collectors", "neurofx.agents",
                      "neurofx.nn", "neurofx.reports"},
    "neurofx.config": {"core", "neurofx.data", "neurofx.agents", "neurofx.nn",
                       "neurofx.strategies"},
    "neurofx.pipeline": {"core", "neurofx.config", "neurofx.data", "neurofx.strategies",
                         "neurofx.collectors", "neurofx.reports", "neurofx.study",
                         "neurofx.agents", "neurofx.nn"},
    # commands parse and print; `data` and `devices` inspect files and devices directly
    "neurofx.commands": {"core", "neurofx.config", "neurofx.pipeline", "neurofx.data",
                         "neurofx.nn"},
    "neurofx.cli": {"core", "neurofx.commands"},
}


@cache
def modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in SOURCES.items():
        base = ROOT / folder
        for f in sorted(base.rglob("*.py")):
            parts = list(f.relative_to(base).with_suffix("").parts)
            if pkg == "neurofx" and parts[0] in {p.split(".")[1] for p in SOURCES if "." in p}:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = f
    return out


def layer(module: str) -> str:
    if module in CORE:
        return "core"
    return ".".join(module.split(".")[:2])


@cache
def imports(module: str) -> list[tuple[str, str | None, bool]]:
    """(imported module, imported name or None, inside a function?) of ``module``'s neurofx
    imports; ``from pkg import sub`` counts as importing the module ``pkg.sub``."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                out.extend((a.name, None, in_function) for a in child.names
                           if a.name.startswith("neurofx"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("neurofx"):
                    for a in child.names:
                        sub = f"{target}.{a.name}"
                        out.append((sub, None, in_function) if sub in modules()
                                   else (target, a.name, in_function))
            visit(child, nested)

    visit(tree, False)
    return out


def test_every_source_module_is_found():
    assert {"neurofx.nn.model", "neurofx.config", "neurofx.schema", "neurofx.reports.metrics",
            "neurofx.strategies.broker", "neurofx.pipeline.research"} <= set(modules())


def test_layers_import_only_the_layers_below_them():
    bad = []
    for module in modules():
        src = layer(module)
        assert src in ALLOWED, f"{module}: layer {src} has no rule in ALLOWED"
        for target, _, _ in imports(module):
            dst = layer(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{module} -> {target}")
    assert bad == []


def test_the_engine_knows_no_trading_shapes():
    assert [m for m in modules() if layer(m) == "neurofx.nn"
            and any(t == "neurofx.schema" for t, _, _ in imports(m))] == []


def test_no_neurofx_import_inside_a_function():
    assert [f"{m} -> {t}" for m in modules() for t, _, inside in imports(m) if inside] == []


def test_no_import_cycle():
    graph = {m: {t if t in modules() else t.rpartition(".")[0] for t, _, _ in imports(m)}
             for m in modules()}
    graph = {m: {t for t in ts if t in modules() and t != m} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def walk(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                walk(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    # a package's __init__ importing its own submodules, which import siblings through it,
    # is how packages are built; any other cycle is a defect
    real = [c for c in cycles if not all(x.startswith(c[0] + ".") or x == c[0] for x in c)]
    assert real == []


@cache
def defined_names(module: str) -> set[str]:
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                elts = target.elts if isinstance(target, ast.Tuple) else [target]
                names.update(t.id for t in elts if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_no_name_is_imported_through_a_module_that_re_exports_it():
    """``from a.b import X`` must find X defined in module a.b (a package's ``__init__`` may
    offer its public API; a plain module may not pass on what it imported)."""
    bad = []
    for module in modules():
        for target, name, _ in imports(module):
            if name is None or target not in modules():
                continue
            if modules()[target].name == "__init__.py":
                continue
            if name not in defined_names(target):
                bad.append(f"{module}: {name} from {target}")
    assert bad == []


SHAPES = ("HISTORY_BARS", "BAR_FEATURES", "STATE_SIZE", "FORECAST_BARS", "FORECAST_SIZE",
          "ACCOUNT_RECORD_SIZE", "ACTOR_ACCOUNT_SIZE", "N_ACTIONS", "N_REWARDS",
          # names of earlier versions that must not come back
          "N_FORECAST", "BAR_DESCR", "N_FEATURES", "ACCOUNT_SIZE", "ACCOUNT_INPUT_SIZE")


def test_each_shape_constant_is_defined_once_in_the_schema():
    pattern = re.compile(rf"^\s*({'|'.join(SHAPES)})\s*(:[^=]*)?=", re.M)
    found = {}
    for folder in list(SOURCES.values()) + ["benchmarks"]:
        for f in (ROOT / folder).rglob("*.py"):
            for m in pattern.finditer(f.read_text(encoding="utf-8")):
                found.setdefault(m.group(1), []).append(str(f.relative_to(ROOT)))
    assert found == {name: ["neurofx/schema.py"] for name in SHAPES[:9]}
