"""The seed's CNN-BiLSTM (``cnn-bilstm-mfcc``): original state-dict names, windows, padding, long input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.voice import cnn as vc
from fusion.voice.mfcc import mfcc, pad_or_cut, span_frames
from fusion.voice.model import EMBEDDED_ROOT
from fusion.voice.prosody import resolve_baseline

DESIGN_KEYS = {
    "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
    "bn1.num_batches_tracked", "conv2.weight", "conv2.bias", "bn2.weight", "bn2.bias", "bn2.running_mean",
    "bn2.running_var", "bn2.num_batches_tracked", "bilstm.weight_ih_l0", "bilstm.weight_hh_l0", "bilstm.bias_ih_l0",
    "bilstm.bias_hh_l0", "bilstm.weight_ih_l0_reverse", "bilstm.weight_hh_l0_reverse", "bilstm.bias_ih_l0_reverse",
    "bilstm.bias_hh_l0_reverse", "dense1.weight", "dense1.bias", "dense2.weight", "dense2.bias",
}


@pytest.fixture(scope="module")
def cnn() -> vc.CnnVoice:
    return vc.load(EMBEDDED_ROOT / vc.ARCHITECTURE / "model.safetensors", 6, "embedded")


def test_state_dict_keys_match_the_original_names():
    net = vc.AudioEmotionNet(6)
    assert set(net.state_dict()) == DESIGN_KEYS
    assert net(torch.zeros(3, 13, 100)).shape == (3, 6)


def test_spans_batched_equal_one_by_one(cnn, ned_clips, config):
    y = np.concatenate(ned_clips["happy"][:2] + ned_clips["sad"][:2])
    spans = [(0.0, 1.5), (0.5, 6.0), (4.0, 13.0), (12.0, 12.8)]
    base = resolve_baseline("female", config)
    feats = mfcc(y)
    together = cnn.span_probs(feats, spans, base)
    alone = np.concatenate([cnn.span_probs(feats, [s], base) for s in spans])
    assert together.shape == (4, 6)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)


def _window_probs(cnn, base, window: np.ndarray) -> np.ndarray:
    x = base.normalise(pad_or_cut(window, 100))
    with torch.inference_mode():
        return torch.softmax(cnn.net(torch.from_numpy(x.T[None].astype(np.float32))), 1).numpy()[0]


def test_recording_shorter_than_a_window_is_padded_like_the_original(cnn, ned_clips, config):
    y = ned_clips["neutral"][0][: 2 * 16000]
    base = resolve_baseline("female", config)
    feats = mfcc(y)
    assert len(feats) < 100
    got = cnn.span_probs(feats, [(0.0, 2.0)], base)[0]
    np.testing.assert_allclose(got, _window_probs(cnn, base, feats), atol=1e-4)


def test_short_span_is_heard_in_a_window_of_its_context(cnn, ned_clips, config):
    y = np.concatenate(ned_clips["neutral"][:2])
    base = resolve_baseline("female", config)
    feats = mfcc(y)
    first, last = span_frames((2.0, 3.0), len(feats), min_frames=100)
    got = cnn.span_probs(feats, [(2.0, 3.0)], base)[0]
    np.testing.assert_allclose(got, _window_probs(cnn, base, feats[first:last]), atol=1e-4)


def test_ten_minute_input_is_processed(cnn, ned_clips, config):
    y = np.tile(np.concatenate(ned_clips["neutral"]), 20)[: 600 * 16000]
    base = resolve_baseline("female", config)
    spans, diary = cnn.score(y, [(0.0, 30.0), (100.0, 400.0), (599.0, 700.0)], [(0.0, 600.0)], base)
    assert diary.shape == (6,) and np.isclose(diary.sum(), 1.0, atol=1e-4)
    assert spans.shape == (3, 6) and np.isfinite(spans).all()
