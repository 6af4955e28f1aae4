"""fusion's public API (lazy names), and how its modules import each other: no private names, no cycles."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import fusion

ROOT = Path(__file__).resolve().parents[1]


def test_the_public_names_are_the_real_ones():
    assert fusion.__version__ == importlib.metadata.version("fusion")
    assert set(fusion.__all__) == {"analyze", "analyze_many", "Pipeline", "DiaryReport", "load_config", "FusionError",
                                   "__version__"}
    from fusion.config import load_config
    from fusion.errors import FusionError
    from fusion.report import DiaryReport

    assert (fusion.load_config, fusion.FusionError, fusion.DiaryReport) == (load_config, FusionError, DiaryReport)
    assert callable(fusion.analyze) and callable(fusion.analyze_many) and isinstance(fusion.Pipeline, type)


def test_import_fusion_loads_no_models_or_heavy_stacks():
    code = ("import sys, fusion; from fusion import load_config, FusionError, DiaryReport; load_config(); "
            "print(sorted(m for m in ('torch', 'fusion.pipeline', 'faster_whisper', 'kiwipiepy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_pipeline_imports_no_service_plotting_or_cluster_stack():
    code = ("import sys, fusion, fusion.pipeline; "
            "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'plotly', 'ray', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _private_imports(path: Path) -> list[str]:
    """``from fusion.x import _y`` and ``x._y`` (x a fusion module) in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fusion"):
            modules |= {a.asname or a.name for a in node.names}
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name[1] != "_"]
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("fusion")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{node.value.id}.{node.attr}")
    return [f"{path.relative_to(ROOT)}: {name}" for name in found]


def test_no_module_uses_another_module_s_private_names():
    files = [*(ROOT / "fusion").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    assert [hit for path in files for hit in _private_imports(path)] == []


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The fusion modules one file imports, at the top or inside functions (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fusion"):
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & modules


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_modules_import_one_way():
    """No two fusion modules import each other, not even inside a function (what several stages share, such as the
    alert kinds of fusion.alerts, lives in a leaf module they all import)."""
    files = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
             for f in (ROOT / "fusion").rglob("*.py")}
    graph = {name: _imports(path, set(files)) - {name, "fusion"} for name, path in files.items()}
    assert _cycles(graph) == []


def _top_level_names(path: Path) -> set[str]:
    """The names one module defines itself: functions, classes and assigned names, at the top or under if/try."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_a_name_is_imported_from_the_module_that_defines_it():
    """A value derived once is read from its own module (fusion.dates, fusion.alerts ...), never through another
    module that happens to import it; a package's __init__ that names its entry points is the exception."""
    modules = {".".join(f.relative_to(ROOT).with_suffix("").parts): f for f in (ROOT / "fusion").rglob("*.py")
               if f.name != "__init__.py"}
    found = []
    for path in (p for folder in ("fusion", "bench", "evalsets", "tests") for p in (ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                own = _top_level_names(modules[node.module])
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name not in own]
    assert found == []
