"""The layers hold: core imports no app, arrows between apps point down, nothing imports the
project package, engines import no Django, no import cycles, no project import hidden in a
function (except lazy engine imports, which pull torch), no module over 400 lines and no
function over 60.

Run as a script for the report: `python tests/test_architecture.py`.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Bottom to top. An app may import its own modules and any app below it.
LAYERS = ["core", "accounts", "datanets", "training", "attribution", "serving", "modelfactory"]
RANK = {name: i for i, name in enumerate(LAYERS)}
WEB_STACK = ("django", "celery", "channels", "rest_framework", "drf_spectacular", "allauth", "daphne", "kombu")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# Process entry points set Django up before they may import models; a Celery worker bootstep is
# imported with the Celery app, before Django is set up, and imports models only when it runs.
SETUP_FIRST = {"serving.worker", "training.sweep"}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function body


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(node, source: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    module = _resolve(source, is_package, node)
    # `from pkg import sub` imports the submodule pkg.sub when there is one.
    subs = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in known]
    return subs or [module]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, path: Path, known: set[str]) -> list[Import]:
    found: list[Import] = []

    def walk(node, lazy: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never executed
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, source, path.name == "__init__.py", known):
                    found.append(Import(source, target, child.lineno, lazy))
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            walk(child, inner)

    walk(ast.parse(path.read_text()), False)
    return found


def all_imports() -> list[Import]:
    mods = modules()
    known = set(mods)
    return [imp for name, path in mods.items() for imp in imports_of(name, path, known)]


def package(module: str) -> str:
    return module.split(".")[0]


def is_engine(module: str) -> bool:
    return ".engine" in f".{module}." and module.split(".")[1:2] == ["engine"]


def project(imp: Import) -> bool:
    return package(imp.target) in RANK


def upward(imports: list[Import]) -> list[Import]:
    return [
        i
        for i in imports
        if project(i) and package(i.target) != package(i.source) and RANK[package(i.target)] > RANK[package(i.source)]
    ]


def cycles(imports: list[Import], with_lazy: bool = False) -> list[list[str]]:
    """Strongly connected components (more than one module) of the import-time graph
    (`with_lazy`: counting imports inside functions too, the cycles they hold open)."""
    graph = defaultdict(set)
    for i in imports:
        if project(i) and (with_lazy or not i.lazy) and i.target != i.source:
            graph[i.source].add(i.target)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def hidden_project_imports(imports: list[Import]) -> list[Import]:
    """Project modules imported inside functions: allowed only for engines (they pull torch)."""
    return [
        i
        for i in imports
        if i.lazy
        and project(i)
        and not is_engine(i.target)
        and i.source not in SETUP_FIRST
        and i.target != i.source
        and not _registers_receivers(i)
    ]


def _registers_receivers(imp: Import) -> bool:
    """An AppConfig.ready() importing its own app's signal receivers: Django's documented way."""
    return imp.source.endswith(".apps") and package(imp.source) == package(imp.target)


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    out = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    out.append((name, node.name, length))
    return out


def long_files(limit: int = MAX_FILE_LINES) -> list[tuple[str, int]]:
    out = []
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        if lines > limit:
            out.append((name, lines))
    return out


def _show(items) -> str:
    return "\n".join(f"  {i.source}:{i.line} -> {i.target}" for i in items)


IMPORTS = all_imports()


def test_core_imports_no_app():
    bad = [i for i in IMPORTS if package(i.source) == "core" and project(i) and package(i.target) != "core"]
    assert not bad, "core must import no app:\n" + _show(bad)


def test_nothing_imports_the_project_package():
    bad = [i for i in IMPORTS if package(i.target) == "modelfactory" and package(i.source) != "modelfactory"]
    assert not bad, "the project package is on top; nothing imports it:\n" + _show(bad)


def test_arrows_between_apps_point_down():
    bad = upward(IMPORTS)
    assert not bad, f"layers are {' < '.join(LAYERS)}; these point up:\n" + _show(bad)


def test_no_import_cycles():
    assert cycles(IMPORTS) == []


def test_no_project_import_hides_in_a_function():
    bad = hidden_project_imports(IMPORTS)
    assert not bad, "import these at the top (a function-level import hides a cycle):\n" + _show(bad)


@pytest.mark.parametrize("engine", sorted({m for m in modules() if is_engine(m)}))
def test_engines_import_no_django_and_no_app(engine):
    mine = [i for i in IMPORTS if i.source == engine]
    web = [i for i in mine if i.target.split(".")[0] in WEB_STACK]
    apps = [i for i in mine if project(i) and not is_engine(i.target)]
    assert not web + apps, f"{engine} must stay plain Python:\n" + _show(web + apps)


# Plain-Python processes besides the engines: the local dev chain.
PLAIN = {"attribution.devchain": ["attribution.devchain"]}


def _plain_groups() -> dict[str, list[str]]:
    groups = defaultdict(list)
    for m in modules():
        if is_engine(m):
            groups[".".join(m.split(".")[:2])].append(m)
    return {**groups, **PLAIN}


@pytest.mark.parametrize("group", sorted(_plain_groups()))
def test_plain_python_runs_without_django_loaded(group):
    """The same at run time, one process per engine: importing all of it leaves Django unloaded
    (an engine must run alone on a GPU box or in a benchmark)."""
    import subprocess

    names = _plain_groups()[group]
    code = "import sys\n" + "".join(f"import {m}\n" for m in names)
    code += "loaded = [m for m in ('django', 'celery', 'channels') if m in sys.modules]\nassert not loaded, loaded"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_over_400_lines():
    assert long_files() == []


def test_no_function_over_60_lines():
    assert long_functions() == []


def test_the_checker_sees_what_it_should():
    """The rules above would catch a violation: each detector finds one in a made-up graph."""
    made_up = [
        Import("datanets.services", "training.models", 1, False),
        Import("training.models", "datanets.services", 1, False),
        Import("training.services", "datanets.models", 1, True),
    ]
    assert upward(made_up) == [made_up[0]]
    assert cycles(made_up) == [["datanets.services", "training.models"]]
    assert hidden_project_imports(made_up) == [made_up[2]]
    assert is_engine("training.engine.train") and not is_engine("training.services")


if __name__ == "__main__":
    arrows = defaultdict(int)
    for i in IMPORTS:
        if project(i) and package(i.target) != package(i.source):
            arrows[(package(i.source), package(i.target))] += 1
    print("app-to-app arrows (source -> target: imports):")
    for (a, b), n in sorted(arrows.items()):
        up = a in RANK and RANK[b] > RANK[a]
        print(f"  {a} -> {b}: {n}{'   UP' if up else ''}")
    print(f"arrows up: {len({(package(i.source), package(i.target)) for i in upward(IMPORTS)})} of {len(arrows)}")
    print(f"import cycles: {len(cycles(IMPORTS))}")
    for c in cycles(IMPORTS):
        print("  " + " <-> ".join(c))
    print(f"cycles counting imports inside functions: {len(cycles(IMPORTS, with_lazy=True))}")
    for c in cycles(IMPORTS, with_lazy=True):
        print("  " + " <-> ".join(c))
    hidden = hidden_project_imports(IMPORTS)
    print(f"project imports inside functions (non-engine): {len(hidden)}")
    print(f"modules over {MAX_FILE_LINES} lines: {long_files()}")
    print(f"functions over {MAX_FUNCTION_LINES} lines: {long_functions()}")
