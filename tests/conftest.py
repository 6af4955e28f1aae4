"""Shared fixtures: the real datasets beside the project and the default configuration."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS
from require import unavailable
from text_samples import PLAIN_WORDS, SAD_WORDS

from fusion.config import Config, default_config

ROOT = Path(__file__).resolve().parents[1]
# The datasets beside the checkout (../shared/data/README.md); FUSION_SHARED_DATA points elsewhere.
SHARED_DATA = Path(os.environ.get("FUSION_SHARED_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared datasets: a test that needs them is skipped without them, and fails under CI=true."""
    if not SHARED_DATA.is_dir():
        unavailable(f"{SHARED_DATA} is not present (set FUSION_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request):
    """The service's database for a test of the store, once per kind: "" (the default SQLite file in the storage
    folder) and a new database on the PostgreSQL server at ``$FUSION_TEST_POSTGRES_URL`` (``.ci/postgres`` starts
    one and prints that line; CI sets it), dropped after the test."""
    yield from _database(request.param)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request):
    """``database_url`` for a module's shared service."""
    yield from _database(request.param)


def _database(kind: str):
    if kind == "sqlite":
        yield ""
        return
    server = os.environ.get("FUSION_TEST_POSTGRES_URL")
    if not server:
        unavailable("no PostgreSQL server: FUSION_TEST_POSTGRES_URL is not set (eval \"$(bash .ci/postgres)\")")
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"fusion_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(scope="session")
def config() -> Config:
    return default_config()


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium (pages open in contexts of it: ``offline_browser``, or one with the headers a test needs)."""
    # Outside CI a developer machine may lack the browser; CI (.ci/run installs it) must never skip.
    if os.environ.get("CI") != "true":
        pytest.importorskip("playwright.sync_api")
        if not Path(CHROMIUM).exists():
            pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FUSION_CHROMIUM)")
    import playwright.sync_api as playwright

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def offline_browser(chromium):
    """A browser context with no network: a self-contained page must open in it."""
    context = chromium.new_context(viewport={"width": 1200, "height": 900}, offline=True)
    yield context
    context.close()


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


CLIPS = [f"speech/ko_transcribed/{s}/{s}{n:05d}.flac" for s in ("pfa", "pma") for n in (1, 2, 3, 4)]


@pytest.fixture
def clips(shared_data, tmp_path) -> list[Path]:
    """Real short Korean clips, copied so a test may add bad files beside them."""
    folder = tmp_path / "in"
    folder.mkdir()
    out = []
    for rel in CLIPS:
        dst = folder / Path(rel).name
        dst.write_bytes((shared_data / rel).read_bytes())
        out.append(dst)
    return out


SAMPLES = ROOT / "samples"


@pytest.fixture(scope="session")
def flagship_report():
    """The README's demo: samples/sad_voice_ko.flac read with the everyday diary of samples/everyday_ko.txt (a
    pleasant day, one small mishap), heard by the real models; it raises "positive words, depressed tone" for the
    whole diary."""
    from fusion import analyze

    words = (SAMPLES / "everyday_ko.txt").read_text(encoding="utf-8")
    return analyze(SAMPLES / "sad_voice_ko.flac", transcript=words)


@pytest.fixture(scope="session")
def mirror_reports(shared_data) -> dict:
    """Real voices under words of the other mood, one report per mirror alert kind (ko_emotional speaker nem,
    dev split, male: never trained on). Measured voice points, far past the rules' thresholds:
    nem00103 (happy) valence 0.76, arousal 0.49 (upbeat needs 0.15 and 0.4), under sad words;
    nem00303 (angry) arousal 0.75 (agitated needs 0.61), under plain words."""
    from fusion import analyze

    root = shared_data / "speech" / "ko_emotional" / "nem"
    return {"negative_words_upbeat_tone": analyze(root / "nem00103.flac", transcript=SAD_WORDS),
            "calm_words_agitated_tone": analyze(root / "nem00303.flac", transcript=PLAIN_WORDS)}
