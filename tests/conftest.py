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
