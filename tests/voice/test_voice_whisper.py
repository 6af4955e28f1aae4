"""The ``whisper-encoder-lr`` voice model: the truncated encoder, pooling over spans, the head, the shipped model."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from fusion.audio import load_audio
from fusion.errors import ModelError
from fusion.levels import voiced_spans
from fusion.voice import whisper as vw
from fusion.voice.model import load_audio_model, load_audio_model_from
from fusion.voice.prosody import resolve_baseline


@pytest.fixture(scope="module")
def encoder(config) -> vw.LayerEncoder:
    return vw.load_encoder(3)


@pytest.fixture(scope="module")
def clip(shared_data):
    return load_audio(shared_data / "speech" / "ko_emotional" / "emg" / "emg00101.flac")


def test_layer_encoder_equals_whisper_blocks_on_a_30_s_input(encoder, clip, config):
    """Our encoder and log-mel, defined apart from openai-whisper, give its AudioEncoder's hidden states."""
    from whisper.audio import log_mel_spectrogram, pad_or_trim
    from whisper.model import AudioEncoder

    from fusion.model_files import openai_checkpoint

    checkpoint = torch.load(openai_checkpoint(), weights_only=True, mmap=True)
    d = checkpoint["dims"]
    full = AudioEncoder(d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"])
    full.load_state_dict({k[8:]: v.float() for k, v in checkpoint["model_state_dict"].items()
                          if k.startswith("encoder.")})
    seen = {}
    for k in (2, 3):
        full.blocks[k - 1].register_forward_hook(lambda m, i, out, k=k: seen.__setitem__(k, out[0]))
    mel = log_mel_spectrogram(torch.from_numpy(pad_or_trim(clip.samples)), d["n_mels"])
    torch.testing.assert_close(vw.log_mel(torch.from_numpy(pad_or_trim(clip.samples)), d["n_mels"]), mel)
    with torch.inference_mode():
        full.eval()(mel[None])
        ours = encoder(mel, (2, 3))
    assert ours.shape == (1500, 2 * d["n_audio_state"])
    torch.testing.assert_close(ours, torch.cat([seen[2], seen[3]], dim=-1), atol=1e-4, rtol=1e-4)


def test_pooled_features_are_the_mean_of_each_span_frames(encoder, clip):
    speech = [(0.0, clip.duration)]
    targets = [(1.0, 2.5), (0.0, clip.duration), (clip.duration + 1, clip.duration + 2)]
    pooled = vw.pooled_features(clip.samples, targets, speech, encoder, (3,), max_piece_s=30.0)
    with torch.inference_mode():
        frames = encoder(vw.log_mel(torch.from_numpy(clip.samples), 80), (3,)).double().numpy()
    times = (np.arange(len(frames)) + 0.5) * vw.FRAME_S
    inside = (times >= 1.0) & (times < 2.5)
    np.testing.assert_allclose(pooled[0], frames[inside].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled[1], frames.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert np.isnan(pooled[2]).all(), "a span outside the recording has no frames"


def test_pieces_and_widening():
    assert vw.pieces([(0.0, 25.0), (30.0, 30.05)], 10.0) == [(0.0, 25 / 3), (25 / 3, 50 / 3), (50 / 3, 25.0)]
    speech = [(1.0, 2.0), (5.0, 9.0)]
    assert vw.widen((1.4, 1.6), speech, 1.0, 10.0) == pytest.approx((0.65, 2.35))  # grown by 0.25, then 0.5
    assert vw.widen((5.0, 8.0), speech, 1.0, 10.0) == (5.0, 8.0)
    assert vw.widen((0.0, 0.5), [], 1.0, 3.0) == (0.0, 3.0)


def _tiny_head(tmp_path, config, labels, layers=(1,), features=512):
    rng = np.random.default_rng(0)
    head = vw.WhisperHead(np.zeros(features * len(layers)), np.ones(features * len(layers)),
                          rng.normal(0, 0.01, (len(labels), features * len(layers))), np.zeros(len(labels)))
    vw.save(tmp_path, head, {"labels": labels, "layers": list(layers)})
    return tmp_path


def test_a_tiny_head_loads_through_the_registry_and_scores_a_real_clip(tmp_path, clip, config):
    """The loaded model is its head over the encoder layers it names, pooled over each widened span: the neutral
    column apart, the emotions renormalised; a span outside the recording is heard as the whole diary."""
    labels = [*config.labels.en, config.audio.neutral_label]
    directory = _tiny_head(tmp_path, config, labels)
    model = load_audio_model_from(str(directory), config)
    assert model.architecture == vw.ARCHITECTURE
    spans, speech = [(0.0, 1.0), (1.0, 3.0), (50.0, 51.0)], voiced_spans(clip)
    scores = model.predict(clip.samples, spans, speech, resolve_baseline("male", config))
    targets = [vw.widen(s, speech, model.scorer.min_span_s, clip.duration) for s in spans[:2]] + [(0, clip.duration)]
    x = vw.pooled_features(clip.samples, targets, speech, vw.load_encoder(1), (1,), model.scorer.max_piece_s)
    p = vw.read_head(directory).probs(x)
    emotions = p[:, :-1] / p[:, :-1].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.spans[:2], emotions[:2], rtol=1e-5)
    np.testing.assert_allclose(scores.diary, emotions[2], rtol=1e-5)
    np.testing.assert_allclose([*scores.span_neutral[:2], scores.diary_neutral], p[:, -1], rtol=1e-5)
    np.testing.assert_array_equal(scores.spans[2], scores.diary)
    assert scores.span_neutral[2] == scores.diary_neutral


def test_a_head_that_does_not_fit_the_layers_is_refused(tmp_path, config):
    labels = [*config.labels.en, config.audio.neutral_label]
    _tiny_head(tmp_path, config, labels, layers=(1,), features=100)
    with pytest.raises(ModelError, match="does not fit"):
        load_audio_model_from(str(tmp_path), config)


def test_silence_says_nothing(config):
    model = load_audio_model(config)
    scores = model.predict(np.zeros(3 * 16000, np.float32), [(0.0, 1.0)], [], resolve_baseline("male", config))
    np.testing.assert_allclose(scores.diary, np.full(6, 1 / 6), atol=1e-6)


def _ravdess(shared_data, labels, actors=("01", "02", "03", "04")):
    root = shared_data / "speech" / "ravdess"
    with (root / "labels.csv").open(encoding="utf-8") as fh:
        return [(r["label"], root / r["path"]) for r in csv.DictReader(fh)
                if r["speaker"] in actors and r["label"] in labels and r["intensity"] == "strong"]


def test_shipped_model_hears_sad_and_neutral_voices_of_unseen_speakers(shared_data, config):
    """RAVDESS test actors (two fixed statements, so only the voice differs): sad clips score higher P(SAD)
    than happy ones, and neutral/calm ones higher P(neutral voice) than angry ones."""
    model = load_audio_model(config)
    sad = config.labels.en.index("SAD")
    out: dict[str, list[tuple[float, float]]] = {}
    for label, path in _ravdess(shared_data, ("sad", "happy", "calm", "angry")):
        audio = load_audio(path)
        s = model.predict(audio.samples, [], voiced_spans(audio), resolve_baseline("auto", config))
        out.setdefault(label, []).append((float(s.diary[sad]) * (1 - s.diary_neutral), s.diary_neutral))
    mean = {k: np.mean(v, axis=0) for k, v in out.items()}
    assert mean["sad"][0] > mean["happy"][0] + 0.2, mean
    assert mean["calm"][1] > mean["angry"][1] + 0.2, mean
