"""Shared fixtures: the real datasets beside the project and the default configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fusion.config import Config, default_config
from require import unavailable

ROOT = Path(__file__).resolve().parents[1]
# The datasets beside the checkout (../shared/data/README.md); FUSION_SHARED_DATA points elsewhere.
SHARED_DATA = Path(os.environ.get("FUSION_SHARED_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared datasets: a test that needs them is skipped without them, and fails under CI=true."""
    if not SHARED_DATA.is_dir():
        unavailable(f"{SHARED_DATA} is not present (set FUSION_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def config() -> Config:
    return default_config()


@pytest.fixture(scope="session")
def ned_clips(shared_data) -> dict:
    """Test speaker ned of ko_emotional (scripted, female): decoded clips by label."""
    import csv

    from fusion.audio import load_audio

    root = shared_data / "speech" / "ko_emotional"
    by_label: dict = {}
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["speaker"] == "ned":
                by_label.setdefault(r["label"], []).append(load_audio(root / r["path"]).samples)
    return by_label
