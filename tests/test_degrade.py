"""Recording conditions (fusion.degrade) on a real clip: seeded, and changing the audio as each name says."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.audio import load_audio
from fusion.degrade import (
    clip_seed,
    codec_round_trip,
    degrade,
    direct_to_reverberant,
    measured_snr,
    parse_conditions,
    room_response,
)
from fusion.quality import bandwidth_hz


@pytest.fixture(scope="module")
def clip(shared_data) -> np.ndarray:
    return load_audio(shared_data / "speech" / "ko_emotional" / "nem" / "nem00201.flac").samples


@pytest.fixture(scope="module")
def talkers(shared_data) -> list[np.ndarray]:
    folder = shared_data / "speech" / "ko_emotional"
    return [load_audio(folder / "nea" / f"nea0000{k}.flac").samples for k in range(1, 6)]


@pytest.mark.parametrize("condition", ["pink15", "babble5", "near", "far", "near+opus16"])
def test_same_seed_same_samples_other_seed_other_samples(clip, talkers, condition):
    a = degrade(clip, condition, clip_seed(0, "x.flac"), talkers)
    assert np.array_equal(a, degrade(clip, condition, clip_seed(0, "x.flac"), talkers))
    assert not np.array_equal(a, degrade(clip, condition, clip_seed(1, "x.flac"), talkers))


@pytest.mark.parametrize("condition,snr", [("pink15", 15), ("pink5", 5), ("babble15", 15), ("babble5", 5)])
def test_noise_lands_at_the_named_snr(clip, talkers, condition, snr):
    noisy = degrade(clip, condition, 7, talkers)
    assert abs(measured_snr(clip, noisy) - snr) < 1.0


def test_a_pyav_without_the_codec_s_encoder_is_a_clear_error(clip, monkeypatch):
    """Some PyAV wheels carry an FFmpeg without libopencore_amrnb (18.1.1): the condition says what is missing.
    (The set of codecs is narrowed here: the installed PyAV has the encoder.)"""
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libopencore_amrnb"})
    with pytest.raises(ValueError, match=r"'amr' needs the libopencore_amrnb encoder"):
        codec_round_trip(clip, "amr")


def test_amr_leaves_nothing_above_4_khz_and_comes_back_at_16_khz(clip):
    amr = degrade(clip, "amr", 0)
    assert abs(amr.size - clip.size) < 0.05 * clip.size
    assert bandwidth_hz(clip) > 7000
    assert bandwidth_hz(amr) < 5000      # the 8-to-16 kHz resampler leaks a few hundred Hz


@pytest.mark.parametrize("condition", ["opus16", "aac32"])
def test_wideband_codecs_keep_the_clip_and_change_its_samples(clip, condition):
    coded = degrade(clip, condition, 0)
    n = min(coded.size, clip.size)
    assert abs(coded.size - clip.size) < 0.05 * clip.size
    assert not np.allclose(coded[:n], clip[:n], atol=1e-3)
    assert abs(np.std(coded) / np.std(clip) - 1.0) < 0.1


def test_gain_lowers_the_level_by_the_named_db(clip):
    quiet = degrade(clip, "gain-25", 0)
    assert 20 * np.log10(np.std(quiet) / np.std(clip)) == pytest.approx(-25.0, abs=0.01)


def test_near_room_is_near_five_db_drr_and_far_is_reverberant():
    near = [direct_to_reverberant(room_response(np.random.default_rng(s))) for s in range(4)]
    far = [direct_to_reverberant(room_response(np.random.default_rng(s), far=True)) for s in range(4)]
    assert all(abs(d - 5.0) < 1.5 for d in near)
    assert all(d < -3.0 for d in far)


def test_unknown_condition_is_named():
    with pytest.raises(ValueError, match="'loud'"):
        parse_conditions("clean,loud")
    with pytest.raises(ValueError, match="at least 4 clips"):
        degrade(np.zeros(16000, np.float32), "babble5", 0, [])
