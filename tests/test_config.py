"""The typed configuration of fusion/config.py: defaults only in the TOML, and its fingerprint."""

from __future__ import annotations

import tomllib
import typing

import pytest
from pydantic import BaseModel

from fusion.config import Config, default_config_path


def _sections(model: type[BaseModel], data: dict, where: str):
    """Each (section model, its TOML table, dotted name), walking into sections and tables of sections."""
    yield model, data, where
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _sections(kind, data.get(name, {}), f"{where}.{name}")
        elif typing.get_origin(kind) is dict:
            value = typing.get_args(kind)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                for key, table in data.get(name, {}).items():
                    yield from _sections(value, table, f"{where}.{name}.{key}")


def test_every_setting_is_in_the_toml_and_nowhere_else():
    """No field of the config carries a default in code: configs/default.toml gives each one, once."""
    with default_config_path().open("rb") as fh:
        toml = tomllib.load(fh)
    for model, table, where in _sections(Config, toml, "config"):
        for name, field in model.model_fields.items():
            assert field.is_required(), f"{where}.{name} has a default in code; it belongs in configs/default.toml"
            assert name in table, f"configs/default.toml gives no {where}.{name}"


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
