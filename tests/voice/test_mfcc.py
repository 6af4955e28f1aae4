"""MFCC features of the seed's voice model: equal to librosa's one-shot call, in blocks, windows and padding."""

from __future__ import annotations

import librosa
import numpy as np

from fusion.audio import load_audio
from fusion.voice import mfcc as mf


def test_mfcc_matches_librosa_and_blocks_match_one_shot(shared_data, monkeypatch):
    clips = sorted((shared_data / "speech" / "ko_emotional" / "ned").glob("ned000*.flac"))[:3]
    y = np.concatenate([load_audio(p).samples for p in clips])
    ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13).T
    np.testing.assert_allclose(mf.mfcc(y), ref)
    monkeypatch.setattr(mf, "MFCC_BLOCK_FRAMES", 97)
    np.testing.assert_allclose(mf.mfcc(y), ref, atol=1e-3)


def test_pad_or_cut_and_window_starts():
    seq = np.ones((37, 13), np.float32)
    padded = mf.pad_or_cut(seq, 100)
    assert padded.shape == (100, 13) and padded[36].all() and not padded[37:].any()
    assert mf.pad_or_cut(np.ones((250, 13)), 100).shape == (100, 13)
    assert mf.window_starts(100) == [0] and mf.window_starts(40) == [0]
    assert mf.window_starts(230) == [0, 50, 100, 130]


def test_short_span_grows_into_its_context():
    first, last = mf.span_frames((2.0, 3.0), 400, min_frames=100)
    assert last - first == 100 and first < 2.0 * 16000 / 512 and last > 3.0 * 16000 / 512
    assert mf.span_frames((0.0, 2.0), 60, min_frames=100) == (0, 60)
