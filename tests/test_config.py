"""The typed configuration of fusion/config.py: defaults only in the TOML, and its fingerprint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import tomllib
from pydantic import BaseModel

from fusion.config import Config, default_config_path, load_config
from fusion.errors import ConfigError, FusionError

ROOT = Path(__file__).resolve().parents[1]


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


def _edited(tmp_path, old: str, new: str):
    """configs/default.toml with its first ``old`` replaced by ``new``, written to tmp_path."""
    toml = default_config_path().read_text(encoding="utf-8")
    assert old in toml
    path = tmp_path / "edited.toml"
    path.write_text(toml.replace(old, new, 1), encoding="utf-8")
    return path


def test_fusion_config_selects_the_configuration_file(tmp_path, monkeypatch):
    """$FUSION_CONFIG names the file every entry point reads when none is given."""
    path = _edited(tmp_path, "depressed_score = 0.33\n", "depressed_score = 0.5\n")
    monkeypatch.setenv("FUSION_CONFIG", str(path))
    assert default_config_path() == path
    assert load_config().alerts.depressed_score == 0.5
    child = subprocess.run([sys.executable, "-c", "from fusion.config import default_config as d; "
                            "print(d().alerts.depressed_score, d().fingerprint())"],
                           env={**os.environ,
                                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
                           capture_output=True, text=True, timeout=120)
    score, fingerprint = child.stdout.split()
    assert child.returncode == 0 and score == "0.5" and fingerprint == load_config(path).fingerprint(), child.stderr
    monkeypatch.delenv("FUSION_CONFIG")
    assert default_config_path() == ROOT / "configs" / "default.toml"
    monkeypatch.setenv("FUSION_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="missing.toml"):
        load_config()


@pytest.mark.parametrize("old, new, problem", [
    ("[stt]\n", "[stt]\nbeam_sise = 5\n", "unknown key stt.beam_sise"),
    ("[labels]\n", "[colours]\nwords = \"blue\"\n\n[labels]\n", "unknown key colours"),
    ("min_chars = 2\n", "", "missing key sentences.min_chars"),
    ("beam_size = 3\n", "beam_size = \"five\"\n", "stt.beam_size: Input should be a valid integer"),
    ("vad_filter = true\n", "vad_filter = \"sometimes\"\n", "stt.vad_filter: Input should be a valid boolean"),
    ("engine = \"faster-whisper\" ", "engine = \"whisper.cpp\" ", "stt.engine: Input should be 'faster-whisper' or"),
    ("text_weight = 0.7\n", "text_weight = [0.7]\n", "fusion.text_weight: Input should be a valid number"),
    ("calm_words_agitated_tone = [0.0, 1.0, 1.4]\n", "", "missing ['calm_words_agitated_tone']"),
    ("calm_words_agitated_tone = [0.0, 1.0, 1.4]\n", "calm_words_agitated_tone = [0.0, 1.0]\n",
     "alerts.severity.calm_words_agitated_tone"),
    ("ko2en = [\n", "ko2en = [\n  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],\n", "fusion.ko2en must be 6x6"),
    ("[stt]\n", "[stt\n", "not valid TOML"),
    ("min_diaries = 5\n", "min_diaries = 1\n", "history.min_diaries: Input should be greater than or equal to 2"),
    ("[server.tokens]\n", "[server.tokens]\n\" app\" = \"0123456789abcdef0123\"\n",
     "server.tokens: a user name is 1 to 100 printable characters without surrounding spaces, not ' app'"),
])
def test_a_config_of_the_wrong_shape_is_a_config_error_naming_the_file_and_key(tmp_path, old, new, problem):
    path = _edited(tmp_path, old, new)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, FusionError) and info.value.kind == "config"
    assert info.value.path == str(path) and str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value), str(info.value)


@pytest.mark.parametrize("old, new, key", [
    ("[audio_input]\n", "[audio_input]\nsample_rate = 8000\n", "audio_input.sample_rate"),
    ('initial_prompt = ""\n', 'initial_prompt = ""\nembedded_sha256 = "' + "0" * 64 + '"\n', "stt.embedded_sha256"),
    ("[audio]\n", "[audio]\nmin_span_s = 3.0\n", "audio.min_span_s"),
])
def test_an_older_config_setting_what_is_now_a_fact_loads_and_says_it_is_ignored(tmp_path, config, old, new, key):
    """The sample rate (what the models need), the embedded model's hash (what the shipped weights are) and the voice
    model's window (its own config.json's) are no longer settings: a file written before still loads, to the same
    configuration, and says which key is ignored."""
    with pytest.warns(UserWarning, match=rf"edited\.toml: {re.escape(key)} is no longer a setting"):
        assert load_config(_edited(tmp_path, old, new)) == config


@pytest.mark.slow
def test_the_command_line_says_in_one_line_that_an_old_key_is_ignored(tmp_path):
    old = _edited(tmp_path, "[audio_input]\n", "[audio_input]\nsample_rate = 8000\n")
    run = subprocess.run([sys.executable, "-m", "fusion.cli", "analyze", str(tmp_path / "absent.wav"), "--config",
                          str(old)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "absent.wav" in run.stderr, run.stderr
    warning = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "audio_input.sample_rate" in warning[0] and "UserWarning" not in run.stderr


@pytest.mark.parametrize("how", ["--config", "FUSION_CONFIG"])
def test_a_bad_config_is_one_line_on_the_command_line(tmp_path, how):
    bad = tmp_path / "bad.toml"
    bad.write_text("[alerts]\nbogus = 1\n")
    args = [sys.executable, "-m", "fusion.cli", "analyze", "samples/diary_ko.flac"]
    env = {**os.environ, "FUSION_CONFIG": str(bad)} if how == "FUSION_CONFIG" else dict(os.environ)
    run = subprocess.run(args + (["--config", str(bad)] if how == "--config" else []), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "bad.toml" in run.stderr and "alerts.bogus" in run.stderr and "Traceback" not in run.stderr
