"""The public API of fusion/__init__.py: its names, imported lazily, and no private name used across modules."""

from __future__ import annotations

import ast
import importlib
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
