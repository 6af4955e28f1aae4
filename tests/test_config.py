"""The typed configuration of fusion/config.py: its fingerprint."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("section, fields", [
    ("server", {"tokens": {"carol": "a-new-token"}, "workers": 4, "database_url": "postgresql+psycopg://db/fusion"}),
    ("batch", {"workers": 3, "prefetch": 1, "fsync": False}),
    ("eval", {"neutral_label": "calm"}),
    ("stt", {"cpu_threads": 2}),
    ("audio_input", {"max_duration_s": 60.0}),
])
def test_settings_that_change_no_report_keep_the_fingerprint(config, section, fields):
    assert config.with_updates(**{section: fields}).fingerprint() == config.fingerprint()


@pytest.mark.parametrize("section, fields", [
    ("alerts", {"depressed_score": 0.5}),
    ("text", {"neutral_threshold": 0.4}),
    ("stt", {"model": "small"}),
    ("audio", {"architecture": "cnn-bilstm-mfcc"}),
    ("fusion", {"text_weight": 0.6, "audio_weight": 0.4}),
])
def test_settings_that_change_a_report_change_the_fingerprint(config, section, fields):
    assert config.with_updates(**{section: fields}).fingerprint() != config.fingerprint()
