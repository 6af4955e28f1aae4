"""fusion.levels: the report's level warnings, where a recording holds sound, and frame RMS."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from fusion.audio import Audio, audio_from_array, load_audio
from fusion.levels import LEVEL_BLOCK, audio_warnings, frame_rms, rms_dbfs, voiced_spans

CLIP = "speech/ko_transcribed/pfa/pfa00004.flac"


@pytest.fixture(scope="module")
def reference(shared_data) -> Audio:
    return load_audio(shared_data / CLIP)


def test_warnings_for_silence_clipping_and_very_short_input(config, reference):
    cfg = config.audio_input
    assert audio_warnings(reference, cfg) == []
    silent = audio_from_array(np.zeros(16000 * 3, np.float32), 16000)
    assert any(w.startswith("silence") for w in audio_warnings(silent, cfg))
    clipped = audio_from_array(np.clip(reference.samples * 50, -1, 1), 16000)
    assert any(w.startswith("clipped") for w in audio_warnings(clipped, cfg))
    short = audio_from_array(reference.samples[:4000], 16000)
    assert any(w.startswith("very short") for w in audio_warnings(short, cfg))


def test_voiced_spans_find_speech_and_nothing_in_silence_or_hiss(reference):
    gap = np.zeros(16000 * 2, np.float32)
    joined = audio_from_array(np.concatenate([gap, reference.samples, gap]), 16000)
    spans = voiced_spans(joined)
    assert spans and spans[0][0] >= 1.9 and spans[-1][1] <= 2.0 + reference.duration + 0.1
    assert all(a < b for a, b in spans) and all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert voiced_spans(audio_from_array(np.zeros(32000, np.float32), 16000)) == []
    hiss = np.random.default_rng(0).normal(0, 1e-4, 32000).astype(np.float32)
    assert voiced_spans(audio_from_array(hiss, 16000)) == []


def test_frame_rms_in_blocks_equals_librosa_s_rms_of_the_whole_signal(reference):
    expected = librosa.feature.rms(y=reference.samples, frame_length=1024, hop_length=256, center=True)[0]
    got = frame_rms(reference.samples, 1024, 256, block=7)
    assert got.shape == expected.shape and np.allclose(got, expected, atol=1e-6)


def test_levels_of_a_recording_longer_than_a_block_are_those_of_the_whole(config, reference):
    """Level and clipping are summed block by block (no float64 copy of a long recording): the same figures."""
    loud = np.clip(reference.samples * 20, -1, 1)
    y = np.tile(loud, 2 * LEVEL_BLOCK // loud.size + 1)[: 2 * LEVEL_BLOCK + 12345]
    whole = 10.0 * np.log10(np.mean(np.square(y, dtype=np.float64)))
    assert rms_dbfs(y) == pytest.approx(whole, abs=1e-9)
    share = np.mean(np.abs(y) >= config.audio_input.clip_level)
    clipped = [w for w in audio_warnings(audio_from_array(y, 16000), config.audio_input) if w.startswith("clipped")]
    assert len(clipped) == 1 and f"{share:.2%}" in clipped[0]


def test_levels_leave_librosa_s_compiler_unloaded(shared_data):
    """Speech to text runs after the levels and before any voice feature: numba's compiler (130 MB) is not loaded
    for it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from fusion.audio import load_audio; from fusion.levels import audio_warnings, voiced_spans; "
            "from fusion.quality import frame_power_db; a = load_audio(sys.argv[1]); audio_warnings(a); "
            "assert voiced_spans(a); frame_power_db(a.samples); print('numba' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    child = subprocess.run([sys.executable, "-c", code, str(shared_data / CLIP)], capture_output=True, text=True,
                           env=env, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"
