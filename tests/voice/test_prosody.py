"""Prosody and neutral baselines: design values, personal baselines, sane measurements, quiet input."""

from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pytest

from fusion.errors import ModelError
from fusion.voice import prosody as pr


def test_baseline_from_config_is_the_design_values(config):
    male = pr.resolve_baseline("male", config)
    assert male.mean[0] == pytest.approx(-488.7764) and male.std[12] == pytest.approx(1.7729696)
    female = pr.resolve_baseline("female", config)
    assert female.mean[0] == pytest.approx(-460.19843) and female.pitch_hz > male.pitch_hz
    assert pr.resolve_baseline("auto", config, pitch_hz=110.0).name == "male"
    assert pr.resolve_baseline("auto", config, pitch_hz=250.0).name == "female"
    with pytest.raises(ModelError):
        pr.resolve_baseline("/nonexistent/baseline.json", config)


def test_build_baseline_round_trips_and_needs_two_clips(tmp_path, config, ned_clips):
    base = pr.build_baseline(ned_clips["neutral"], "ned", config.audio)
    assert base.mean.shape == (13,) and (base.std > 0).all() and 150 < base.pitch_hz < 350
    base.save_json(tmp_path / "ned.json")
    again = pr.resolve_baseline(str(tmp_path / "ned.json"), config)
    np.testing.assert_allclose(again.mean, base.mean)
    assert again.pitch_hz == pytest.approx(base.pitch_hz) and again.name == "ned"
    with pytest.raises(ValueError, match="at least 2") as err:
        pr.build_baseline(ned_clips["neutral"][:1], cfg=config.audio)
    assert isinstance(err.value, ModelError)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad.json"):
        pr.resolve_baseline(str(tmp_path / "bad.json"), config)


def test_prosody_is_sane_and_sad_is_lower_than_neutral(ned_clips, config):
    neutral = [pr.prosody(y) for y in ned_clips["neutral"]]
    sad = [pr.prosody(y) for y in ned_clips["sad"]]
    assert all(60 < p.pitch_hz < 400 for p in neutral + sad)
    assert all(p.rate_per_s > 0 and -60 < p.energy_db < 0 for p in neutral)
    assert np.median([p.pitch_hz for p in sad]) < 0.95 * np.mean([p.pitch_hz for p in neutral])
    rel = sad[0].relative_to(pr.build_baseline(ned_clips["neutral"], cfg=config.audio))
    assert set(rel) == {"pitch_ratio", "pitch_semitones", "energy_delta_db", "rate_ratio"}
    assert rel["pitch_semitones"] == pytest.approx(12 * np.log2(rel["pitch_ratio"]))


def test_a_track_measures_the_recording_and_its_spans_as_prosody_does(ned_clips):
    """One analysis of the whole recording: the whole is exactly ``prosody``'s figure, a span on the frame grid
    too, and a span off it (its frames shifted by less than a hop) within a few percent."""
    y = np.concatenate(ned_clips["neutral"][:3] + ned_clips["sad"][:2])
    frames = pr.track(y)
    assert astuple(frames.measure()) == astuple(pr.prosody(y))
    hop_s = pr.PROSODY_HOP / 16000
    on_grid = (40 * hop_s, 40 * hop_s + 2.5)
    assert astuple(frames.measure(on_grid)) == astuple(pr.prosody(y, span=on_grid))
    for start in np.arange(0.3, len(y) / 16000 - 1.5, 1.7):
        span = (float(start), float(start) + 1.5)
        got, want = frames.measure(span), pr.prosody(y, span=span)
        assert got.pitch_hz == pytest.approx(want.pitch_hz, rel=0.03, nan_ok=True)
        assert got.energy_db == pytest.approx(want.energy_db, abs=0.5)
        assert got.rate_per_s == pytest.approx(want.rate_per_s, rel=0.25, abs=0.7)
    assert math.isnan(frames.measure((0.0, 0.01)).pitch_hz)          # shorter than a frame: nothing measured


@pytest.mark.parametrize("level_db", [-70.0, -80.0, -95.0])
def test_quiet_audio_measures_nothing_instead_of_crashing(ned_clips, level_db):
    """Speech scaled so its loudest frame sits between -90 and -70 dBFS used to raise IndexError. Below the
    -70 dBFS floor no frame is active, so nothing is measured; hiss has no pitch and no voiced segments, whole or
    a span of it, and a span measures what its own samples measure."""
    y = ned_clips["neutral"][0]
    quiet = (y / np.max(np.abs(y)) * 10 ** (level_db / 20)).astype(np.float32)
    hiss = (np.random.default_rng(0).normal(0, 10 ** (level_db / 20), 3 * 16000)).astype(np.float32)
    assert all(map(math.isnan, astuple(pr.prosody(quiet))[:2])) and pr.prosody(quiet).rate_per_s == 0.0
    for samples in (quiet, hiss):
        whole, part = pr.prosody(samples), pr.prosody(samples, span=(0.5, 1.0))
        assert all(math.isnan(p.pitch_hz) and p.rate_per_s == 0.0 for p in (whole, part))
        np.testing.assert_equal(astuple(part), astuple(pr.prosody(samples[8000:16000])))


def test_a_recording_without_speech_is_refused_by_name(ned_clips, config):
    """Speech and -70 dBFS hiss (before: accepted, energy reference -44 dB), two different silences (before:
    "the same recording more than once?"): each recording without voiced speech is named."""
    speech = ned_clips["neutral"][0]
    hiss = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), 5 * 16000).astype(np.float32)
    silences = [np.zeros(16000 * n, np.float32) for n in (2, 3)]
    for clips, sources, named in (([speech, hiss], ["calm.wav", "hiss.wav"], "hiss.wav"),
                                  (silences, ["quiet1.wav", "quiet2.wav"], "quiet1.wav, quiet2.wav")):
        with pytest.raises(pr.BaselineError, match=f"^{named}: holds no voiced speech"):
            pr.build_baseline(clips, cfg=config.audio, sources=sources)
    with pytest.raises(pr.BaselineError, match="^recording 2 of 2: holds no voiced speech"):
        pr.baseline_from_stats([pr.voice_stats(c, config.audio) for c in (speech, hiss)], "personal")


def test_prosody_frames_block_by_block_are_those_of_the_whole_signal(ned_clips):
    """yin, RMS and zero-crossing rate of a recording over several blocks: the frames of one pass over all of it."""
    import librosa

    clips = [c for label in sorted(ned_clips) for c in ned_clips[label]]
    y = np.concatenate(clips * (3 * pr.PROSODY_BLOCK // sum(c.size for c in clips) + 1))[: 3 * pr.PROSODY_BLOCK + 999]
    f0, rms, zcr = pr.prosody_frames(y, 16000)
    kw = dict(frame_length=pr.PROSODY_FRAME, hop_length=pr.PROSODY_HOP, center=False)
    assert np.array_equal(f0, librosa.yin(y, fmin=pr.FMIN, fmax=pr.FMAX, sr=16000, **kw))
    assert np.array_equal(rms, librosa.feature.rms(y=y, **kw)[0])
    assert np.array_equal(zcr, librosa.feature.zero_crossing_rate(y, **kw)[0])
