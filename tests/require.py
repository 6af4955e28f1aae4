"""What a test needs from outside the repository: skipped on a developer machine that lacks it, an error in CI.

CI (``.ci/run``, which sets up ``../shared/data``, Chromium, espeak-ng and the ``test`` extras) runs with
``CI=true``; there a missing dataset or tool must fail the run instead of quietly skipping a third of it.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> None:
    """Skip the test for ``reason``, or under ``CI=true`` fail it (a skip there would hide a broken setup)."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so this is an error, not a skip", pytrace=False)
    pytest.skip(reason)
