"""Missing datasets skip a test on a developer machine and fail it under CI=true (tests/require.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEEDS_DATA = "tests/voice/test_prosody.py::test_build_baseline_round_trips_and_needs_two_clips"


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": ci, "FUSION_SHARED_DATA": str(tmp_path / "no-such-data"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", NEEDS_DATA],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_missing_shared_data_is_a_skip_locally_and_an_error_in_ci(tmp_path):
    local = _run(tmp_path, "")
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout
    ci = _run(tmp_path, "true")
    assert ci.returncode != 0 and "1 error" in ci.stdout, ci.stdout
    assert "no-such-data is not present" in ci.stdout and "CI=true" in ci.stdout
