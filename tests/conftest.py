"""Shared fixtures: the real datasets beside the project and the default configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.config import Config, default_config

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def config() -> Config:
    return default_config()
