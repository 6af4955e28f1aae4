"""How well a recording lets a voice be heard (fusion.quality), on a real clip degraded by fusion.degrade."""

from __future__ import annotations

import numpy as np
import pytest

import fusion
from fusion.audio import audio_from_array, load_audio
from fusion.degrade import degrade
from fusion.quality import assess
from fusion.report import DiaryReport

HAPPY_WORDS = "오늘 정말 행복했어. 친구들이랑 맛있는 저녁을 먹고 많이 웃었어."
FLAGSHIP = "positive_words_depressed_tone"


@pytest.fixture(scope="module")
def sad_clip(shared_data) -> np.ndarray:
    """A sad voice the flagship fires on when the recording is clean."""
    return load_audio(shared_data / "speech" / "ko_emotional" / "nem" / "nem00201.flac").samples


def test_a_clean_clip_is_heard_well(sad_clip, config):
    q = assess(sad_clip, config.quality)
    assert q.problems == () and q.snr_db > 40 and q.bandwidth_hz > 7000 and q.decay_s < 0.2


@pytest.mark.parametrize("condition", ["pink5", "babble5"])
def test_five_db_noise_is_too_noisy_and_fifteen_is_not(sad_clip, config, condition):
    noisy = assess(degrade(sad_clip, condition, 1, [sad_clip[::-1]] * 4), config.quality)
    assert noisy.snr_db < config.quality.min_snr_db and len(noisy.problems) == 1
    fair = assess(degrade(sad_clip, condition.replace("5", "15"), 1, [sad_clip[::-1]] * 4), config.quality)
    assert fair.snr_db > config.quality.min_snr_db + 2 and fair.problems == ()


def test_reverberation_grows_from_clean_to_near_to_far(sad_clip, config):
    decay = {c: np.median([assess(degrade(sad_clip, c, s), config.quality).decay_s for s in range(3)])
             for c in ("clean", "near", "far")}
    assert decay["clean"] < 0.2 < decay["near"] < decay["far"]
    assert decay["near"] < config.quality.max_decay_s


def test_amr_is_narrowband(sad_clip, config):
    assert assess(degrade(sad_clip, "amr", 0), config.quality).bandwidth_hz < 5000


def test_a_poor_recording_withholds_the_voice_alerts_and_says_why(sad_clip):
    clean = fusion.analyze(audio_from_array(sad_clip, 16000, "sad.wav"), transcript=HAPPY_WORDS)
    assert [a.kind for a in clean.alerts] == [FLAGSHIP] and clean.quality.problems == []
    poor = fusion.analyze(audio_from_array(degrade(sad_clip, "pink5", 1), 16000, "sad.wav"), transcript=HAPPY_WORDS)
    assert poor.alerts == [] and poor.quality.withheld == [FLAGSHIP]
    assert poor.quality.problems and all(p in poor.verdict for p in poor.quality.problems)
    assert all(any(p in w for w in poor.warnings) for p in poor.quality.problems)
    assert poor.quality.words() != clean.quality.words()
    again = DiaryReport.model_validate_json(poor.to_json())
    assert again.quality == poor.quality
    old = poor.model_dump(mode="json")
    del old["quality"]
    assert DiaryReport.model_validate({**old, "schema_version": "1.2"}).quality is None
