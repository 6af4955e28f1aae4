"""The voice stage's interface: architectures named by the model directory, labels mapped, neutral kept apart."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusion.audio import load_audio
from fusion.errors import ModelError
from fusion.levels import voiced_spans
from fusion.voice import cnn as voice_cnn
from fusion.voice import model as voice_model
from fusion.voice import whisper as voice_whisper
from fusion.voice.prosody import resolve_baseline

CLIP = "speech/ko_emotional/emg/emg00201.flac"  # sad voice, plain words


class FixedScorer:
    """A tiny model of the ``Scorer`` protocol: the same probabilities for every span, in its own label order."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, float)

    def score(self, samples, spans, speech, baseline):
        return np.tile(self.probs, (len(spans), 1)), self.probs


def test_labels_are_reordered_and_the_neutral_share_kept_apart(config):
    own = ["NEUTRAL", "HAPPY", "SAD", "ANGRY", "FEAR", "SURPRISE", "DISGUST", "CALM-EXTRA"]
    model = voice_model.LabelledVoiceModel(FixedScorer([0.5, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, 0.1]), own, config.labels.en,
                                  config.audio.neutral_label, "tiny", "fixed")
    scores = model.predict(np.zeros(16000, np.float32), [(0.0, 0.5), (0.5, 1.0)], [(0.0, 1.0)], None)
    assert scores.spans.shape == (2, 6) and scores.diary_neutral == pytest.approx(0.5)
    np.testing.assert_allclose(scores.span_neutral, [0.5, 0.5])
    got = dict(zip(config.labels.en, scores.diary))
    assert (got["HAPPY"] == pytest.approx(0.5) and got["SAD"] == pytest.approx(0.25)
            and got["ANGRY"] == pytest.approx(0.25))
    with pytest.raises(ModelError, match="DISGUST"):
        voice_model.LabelledVoiceModel(FixedScorer([1.0]), ["HAPPY"], config.labels.en, "NEUTRAL", "tiny", "fixed")


def test_default_is_the_whisper_encoder_model(config):
    model = voice_model.load_audio_model(config)
    assert model.architecture == voice_whisper.ARCHITECTURE and model.model_id == "embedded:whisper-encoder-lr"
    assert voice_model.load_audio_model(config) is model


def test_seed_architecture_comes_back_by_config(shared_data, config):
    cfg = config.with_updates(audio={"architecture": "cnn-bilstm-mfcc"})
    model = voice_model.load_audio_model(cfg)
    assert model.architecture == voice_cnn.ARCHITECTURE and model.model_id == "embedded:cnn-bilstm-mfcc"
    audio = load_audio(shared_data / CLIP)
    scores = model.predict(audio.samples, [(0.0, 1.0)], voiced_spans(audio), resolve_baseline("male", config))
    assert scores.diary.shape == (6,) and scores.diary.sum() == pytest.approx(1.0, abs=1e-4)
    assert scores.diary_neutral == 0.0 and not scores.span_neutral.any()
    with pytest.raises(ModelError, match="architecture"):
        voice_model.load_audio_model_from("embedded:default", config.with_updates(audio={"architecture": "nope"}))


def test_original_format_pth_loads_weights_only_and_strict(tmp_path, config):
    net = voice_cnn.AudioEmotionNet(6)
    torch.save(net.state_dict(), tmp_path / "pytorch_model.pth")
    (tmp_path / "labels.json").write_text(json.dumps({str(i): lab for i, lab in enumerate(config.labels.en)}))
    loaded = voice_model.load_audio_model_from(str(tmp_path), config)
    assert loaded.architecture == voice_cnn.ARCHITECTURE and loaded.labels == config.labels.en
    x = torch.randn(2, 13, 100)
    with torch.inference_mode():
        assert torch.allclose(loaded.scorer.net(x), net.eval()(x))


def test_wrong_weights_and_unknown_architectures_are_model_errors(tmp_path, config):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "pytorch_model.pth")
    (tmp_path / "labels.json").write_text(json.dumps(list(config.labels.en)))
    with pytest.raises(ModelError, match="do not match"):
        voice_model.load_audio_model_from(str(tmp_path), config)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "my_module.Net"}))
    with pytest.raises(ModelError, match="unknown architecture 'my_module.Net'"):
        voice_model.load_audio_model_from(str(tmp_path), config)


def test_shuffled_labels_json_reorders_output_columns(tmp_path, shared_data, config):
    perm = [3, 0, 5, 1, 4, 2]
    original = voice_model.load_audio_model(config.with_updates(audio={"architecture": "cnn-bilstm-mfcc"}))
    state = original.scorer.net.state_dict()
    for key in ("dense2.weight", "dense2.bias"):
        state[key] = state[key][perm]
    torch.save(state, tmp_path / "model.pt")
    (tmp_path / "labels.json").write_text(json.dumps([config.labels.en[i] for i in perm]))
    shuffled = voice_model.load_audio_model_from(str(tmp_path / "model.pt"), config)
    audio = load_audio(shared_data / CLIP)
    base = resolve_baseline("male", config)
    a = shuffled.predict(audio.samples, [], voiced_spans(audio), base)
    b = original.predict(audio.samples, [], voiced_spans(audio), base)
    np.testing.assert_allclose(a.diary, b.diary, atol=1e-5)


def _shipped_with(tmp_path, **changes):
    """A copy of the shipped whisper-encoder-lr directory, its config.json changed (None: the key left out)."""
    import shutil

    shipped = voice_model.EMBEDDED_ROOT / voice_whisper.ARCHITECTURE
    copy = tmp_path / "whisper-copy"
    shutil.copytree(shipped, copy)
    settings = json.loads((shipped / "config.json").read_text())
    settings = {k: v for k, v in {**settings, **changes}.items() if v is not None}
    (copy / "config.json").write_text(json.dumps(settings))
    return copy


def test_the_voice_model_is_heard_with_the_window_of_its_own_config_json(tmp_path, shared_data, config):
    """A sentence is widened to the model's own min_span_s: shipped 1 s keeps a 0.2 s sentence apart from the whole
    clip; a model whose config.json says 60 s hears that sentence as the whole clip."""
    audio = load_audio(shared_data / CLIP)
    speech, spans = voiced_spans(audio), [(0.5, 0.7)]
    shipped = voice_model.load_audio_model_from("embedded:default", config).predict(audio.samples, spans, speech, None)
    wide = voice_model.load_audio_model_from(str(_shipped_with(tmp_path, min_span_s=60.0)), config)
    heard = wide.predict(audio.samples, spans, speech, None)
    np.testing.assert_allclose(heard.diary, shipped.diary)
    np.testing.assert_allclose(heard.spans[0], heard.diary)
    assert not np.allclose(shipped.spans[0], shipped.diary)


def test_a_voice_model_without_its_window_is_refused_naming_its_config(tmp_path, config):
    with pytest.raises(ModelError, match=r"whisper-copy/config\.json: no min_span_s"):
        voice_model.load_audio_model_from(str(_shipped_with(tmp_path, min_span_s=None)), config)
