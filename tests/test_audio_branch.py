"""Voice emotion stage: original architecture and weight format, features, baselines, prosody, shipped model."""

from __future__ import annotations

import csv
import json

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from fusion import audio_branch as ab
from fusion.errors import ModelError

DESIGN_KEYS = {
    "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
    "bn1.num_batches_tracked", "conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "bn2.running_mean",
    "bn2.running_var", "bn2.num_batches_tracked", "bilstm.weight_ih_l0", "bilstm.weight_hh_l0", "bilstm.bias_ih_l0",
    "bilstm.bias_hh_l0", "bilstm.weight_ih_l0_reverse", "bilstm.weight_hh_l0_reverse", "bilstm.bias_ih_l0_reverse",
    "bilstm.bias_hh_l0_reverse", "dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias",
}


def _rows(shared_data, dataset):
    with (shared_data / "speech" / dataset / "labels.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _read(shared_data, dataset, row):
    y, sr = sf.read(shared_data / "speech" / dataset / row["path"], dtype="float32")
    assert sr == ab.SAMPLE_RATE
    return y


@pytest.fixture(scope="module")
def ko_speaker(shared_data):
    """Test speaker ned of ko_emotional: clips by label."""
    by_label: dict[str, list[np.ndarray]] = {}
    for r in _rows(shared_data, "ko_emotional"):
        if r["speaker"] == "ned":
            by_label.setdefault(r["label"], []).append(_read(shared_data, "ko_emotional", r))
    return by_label


@pytest.fixture(scope="module")
def model(config):
    return ab.load_audio_model(config)


def test_state_dict_keys_match_the_original_names():
    net = ab.AudioEmotionNet(6)
    assert set(net.state_dict()) == DESIGN_KEYS
    assert net(torch.zeros(3, 13, 100)).shape == (3, 6)


def test_original_format_pth_loads_weights_only_and_strict(tmp_path, config):
    net = ab.AudioEmotionNet(6)
    torch.save(net.state_dict(), tmp_path / "pytorch_model.pth")
    (tmp_path / "labels.json").write_text(json.dumps({str(i): lab for i, lab in enumerate(config.labels.en)}))
    torch.load(tmp_path / "pytorch_model.pth", weights_only=True)
    loaded = ab.load_audio_model_from(str(tmp_path), config)
    x = torch.randn(2, 13, 100)
    with torch.inference_mode():
        assert torch.allclose(loaded.net(x), net.eval()(x))
    assert loaded.labels == config.labels.en


def test_wrong_weights_are_a_model_error(tmp_path, config):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "pytorch_model.pth")
    (tmp_path / "labels.json").write_text(json.dumps(list(config.labels.en)))
    with pytest.raises(ModelError, match="do not match"):
        ab.load_audio_model_from(str(tmp_path), config)
    (tmp_path / "labels.json").write_text(json.dumps(["ANGRY", "SAD", "HAPPY", "FEAR", "SURPRISE", "CALM"]))
    torch.save(ab.AudioEmotionNet(6).state_dict(), tmp_path / "pytorch_model.pth")
    with pytest.raises(ModelError, match="DISGUST"):
        ab.load_audio_model_from(str(tmp_path), config)


def test_shuffled_labels_json_reorders_output_columns(tmp_path, config, model, ko_speaker):
    perm = [3, 0, 5, 1, 4, 2]
    state = model.net.state_dict()
    for key in ("dense2.weight", "dense2.bias"):
        state[key] = state[key][perm]
    torch.save(state, tmp_path / "model.pt")
    (tmp_path / "labels.json").write_text(json.dumps([config.labels.en[i] for i in perm]))
    shuffled = ab.load_audio_model_from(str(tmp_path / "model.pt"), config)
    y = ko_speaker["sad"][0]
    base = ab.resolve_baseline("female", config)
    np.testing.assert_allclose(shuffled.predict_diary(y, base), model.predict_diary(y, base), atol=1e-5)


def test_mfcc_matches_librosa_and_blocks_match_one_shot(shared_data, monkeypatch, ko_speaker):
    y = np.concatenate(ko_speaker["neutral"][:3])
    ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13).T
    np.testing.assert_allclose(ab.mfcc(y), ref)
    monkeypatch.setattr(ab, "MFCC_BLOCK_FRAMES", 97)
    np.testing.assert_allclose(ab.mfcc(y), ref, atol=1e-3)


def test_pad_or_cut_and_window_shapes(config):
    seq = np.ones((37, 13), np.float32)
    padded = ab.pad_or_cut(seq, 100)
    assert padded.shape == (100, 13) and padded[36].all() and not padded[37:].any()
    assert ab.pad_or_cut(np.ones((250, 13)), 100).shape == (100, 13)
    assert ab.window_starts(100) == [0] and ab.window_starts(40) == [0]
    assert ab.window_starts(230) == [0, 50, 100, 130]
    base = ab.resolve_baseline("male", config)
    batch = np.stack([base.normalise(ab.pad_or_cut(seq, 100))] * 4).transpose(0, 2, 1)
    assert batch.shape == (4, 13, 100)


def test_baseline_from_config_is_the_design_values(config):
    male = ab.resolve_baseline("male", config)
    assert male.mean[0] == pytest.approx(-488.7764) and male.std[12] == pytest.approx(1.7729696)
    female = ab.resolve_baseline("female", config)
    assert female.mean[0] == pytest.approx(-460.19843) and female.pitch_hz > male.pitch_hz
    with pytest.raises(ModelError):
        ab.resolve_baseline("/nonexistent/baseline.json", config)


def test_build_baseline_round_trips_and_needs_two_clips(tmp_path, config, ko_speaker):
    neutral = ko_speaker["neutral"]
    base = ab.build_baseline(neutral, "ned", config.audio)
    assert base.mean.shape == (13,) and (base.std > 0).all() and 150 < base.pitch_hz < 350
    base.save_json(tmp_path / "ned.json")
    again = ab.resolve_baseline(str(tmp_path / "ned.json"), config)
    np.testing.assert_allclose(again.mean, base.mean)
    np.testing.assert_allclose(again.std, base.std)
    assert again.pitch_hz == pytest.approx(base.pitch_hz) and again.name == "ned"
    with pytest.raises(ValueError, match="at least 2") as err:
        ab.build_baseline(neutral[:1], cfg=config.audio)
    assert isinstance(err.value, ModelError)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        ab.resolve_baseline(str(tmp_path / "bad.json"), config)


def test_prosody_is_sane_and_sad_is_lower_than_neutral(ko_speaker, config):
    neutral = [ab.prosody(y) for y in ko_speaker["neutral"]]
    sad = [ab.prosody(y) for y in ko_speaker["sad"]]
    assert all(60 < p.pitch_hz < 400 for p in neutral + sad)
    assert all(p.rate_per_s > 0 and -60 < p.energy_db < 0 for p in neutral)
    assert np.median([p.pitch_hz for p in sad]) < 0.95 * np.mean([p.pitch_hz for p in neutral])
    rel = sad[0].relative_to(ab.build_baseline(ko_speaker["neutral"], cfg=config.audio))
    assert set(rel) == {"pitch_ratio", "pitch_semitones", "energy_delta_db", "rate_ratio"}
    assert rel["pitch_semitones"] == pytest.approx(12 * np.log2(rel["pitch_ratio"]))


def test_predict_spans_batched_equals_one_by_one(model, ko_speaker, config):
    y = np.concatenate(ko_speaker["happy"][:2] + ko_speaker["sad"][:2])
    spans = [(0.0, 1.5), (0.5, 6.0), (4.0, 13.0), (12.0, 12.8)]
    base = ab.resolve_baseline("female", config)
    together = model.predict_spans(y, spans, base)
    alone = np.concatenate([model.predict_spans(y, [s], base) for s in spans])
    assert together.shape == (4, 6)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)


def _window_probs(model, base, window: np.ndarray) -> np.ndarray:
    x = base.normalise(ab.pad_or_cut(window, 100))
    with torch.inference_mode():
        return torch.softmax(model.net(torch.from_numpy(x.T[None].astype(np.float32))), 1).numpy()[0]


def test_recording_shorter_than_a_window_is_padded_like_the_original(model, ko_speaker, config):
    y = ko_speaker["neutral"][0][: 2 * 16000]
    base = ab.resolve_baseline("female", config)
    feats = ab.mfcc(y)
    assert ab.span_frames((0.0, 2.0), len(feats), min_frames=100) == (0, len(feats)) and len(feats) < 100
    got = model.predict_spans(y, [(0.0, 2.0)], base)[0]
    np.testing.assert_allclose(got, _window_probs(model, base, feats), atol=1e-4)


def test_short_span_is_heard_in_a_window_of_its_context(model, ko_speaker, config):
    y = np.concatenate(ko_speaker["neutral"][:2])
    base = ab.resolve_baseline("female", config)
    feats = ab.mfcc(y)
    first, last = ab.span_frames((2.0, 3.0), len(feats), min_frames=100)
    assert last - first == 100 and first < 2.0 * 16000 / 512 and last > 3.0 * 16000 / 512
    got = model.predict_spans(y, [(2.0, 3.0)], base)[0]
    np.testing.assert_allclose(got, _window_probs(model, base, feats[first:last]), atol=1e-4)


def test_ten_minute_input_is_processed(model, ko_speaker, config):
    y = np.tile(np.concatenate(ko_speaker["neutral"]), 20)[: 600 * 16000]
    base = ab.resolve_baseline("female", config)
    diary = model.predict_diary(y, base)
    spans = model.predict_spans(y, [(0.0, 30.0), (100.0, 400.0), (599.0, 700.0)], base)
    assert diary.shape == (6,) and np.isclose(diary.sum(), 1.0, atol=1e-4)
    assert spans.shape == (3, 6) and np.isfinite(spans).all()
    assert 150 < ab.prosody(y).pitch_hz < 350


def test_shipped_model_beats_chance_on_korean_test_speakers(model, shared_data, config):
    """Happy / angry / sad of ko_emotional test speakers with personal baselines; chance is 1/3."""
    rows = _rows(shared_data, "ko_emotional")
    correct = total = 0
    for spk in ("emg", "ned"):
        mine = [r for r in rows if r["speaker"] == spk]
        base = ab.build_baseline([_read(shared_data, "ko_emotional", r) for r in mine if r["label"] == "neutral"],
                                 spk, config.audio)
        for r in mine:
            if r["label"] in ("happy", "angry", "sad"):
                p = model.predict_diary(_read(shared_data, "ko_emotional", r), base)
                correct += config.labels.en[int(p.argmax())] == r["label"].upper()
                total += 1
    assert correct / total >= 0.5
