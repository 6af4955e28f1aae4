"""Fusion arithmetic and mismatch rules of fusion/combine.py, on hand-built distributions."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.combine import Observation, fuse, mismatch_alerts, normalize, valence_arousal
from fusion.report import Prosody


def ko(config, **probs) -> np.ndarray:
    """A KO distribution from label=prob pairs given in English (joy=0.9, sadness=0.1)."""
    v = np.array([probs.get(name, 0.0) for name in config.labels.ko_english])
    return v / v.sum()


def en(config, **probs) -> np.ndarray:
    v = np.array([probs.get(name, 0.0) for name in config.labels.en])
    return v / v.sum()


def kinds(alerts) -> set[str]:
    return {a.kind for a in alerts}


def test_fuse_matches_the_original_backend_by_hand(config):
    # joy words, sad voice: t_en = HAPPY; fused_en = 0.7 HAPPY + 0.3 SAD;
    # fused_ko before norm: 기쁨 0.7, 당황 0.14, 슬픔 0.24, 상처 0.06 (sum 1.14)
    fused = fuse(ko(config, joy=1.0), en(config, SAD=1.0), config)
    eps = config.fusion.eps
    assert fused.en[config.labels.en.index("HAPPY")] == pytest.approx(0.7, abs=1e-9)
    assert fused.en[config.labels.en.index("SAD")] == pytest.approx(0.3, abs=1e-9)
    expected = {"기쁨": 0.7, "당황": 0.14, "분노": 0.0, "불안": 0.0, "상처": 0.06, "슬픔": 0.24}
    for label, value in expected.items():
        assert fused.ko[config.labels.ko.index(label)] == pytest.approx(max(value, eps) / 1.14, abs=1e-6)
    assert fused.ko.sum() == pytest.approx(1.0)


def test_fuse_weights_come_from_config(config):
    swapped = config.with_updates(fusion={"text_weight": 0.3, "audio_weight": 0.7})
    fused = fuse(ko(config, joy=1.0), en(config, SAD=1.0), swapped)
    assert fused.en[config.labels.en.index("SAD")] == pytest.approx(0.7, abs=1e-9)


def test_fuse_without_words_is_the_voice(config):
    voice = en(config, ANGRY=0.6, FEAR=0.4)
    assert np.allclose(fuse(None, voice, config).en, normalize(voice, config.fusion.eps))


def test_normalize_clips_and_sums_to_one():
    p = normalize(np.array([0.0, 2.0, -1.0]), 1e-12)
    assert p.min() > 0 and p.sum() == pytest.approx(1.0)


def test_valence_arousal_is_the_expected_point(config):
    points = config.fusion.valence_arousal["ko"]
    va = valence_arousal(ko(config, joy=0.5, sadness=0.5), config.labels.ko, points)
    assert va.valence == pytest.approx((points["기쁨"][0] + points["슬픔"][0]) / 2)
    assert va.arousal == pytest.approx((points["기쁨"][1] + points["슬픔"][1]) / 2)


@pytest.mark.parametrize(
    "words, voice, expected",
    [
        ({"joy": 0.9, "flustered": 0.1}, {"SAD": 0.8, "HAPPY": 0.2}, {"positive_words_depressed_tone"}),
        ({"joy": 0.9, "flustered": 0.1}, {"HAPPY": 0.8, "SURPRISE": 0.2}, set()),
        ({"joy": 0.9, "flustered": 0.1}, {"SAD": 0.3, "HAPPY": 0.7}, set()),
        ({"sadness": 0.9, "hurt": 0.1}, {"SAD": 0.9, "FEAR": 0.1}, set()),
        ({"sadness": 0.9, "hurt": 0.1}, {"HAPPY": 0.9, "SURPRISE": 0.1}, {"negative_words_upbeat_tone"}),
        ({"sadness": 0.6, "hurt": 0.4}, {"ANGRY": 0.8, "FEAR": 0.2}, {"calm_words_agitated_tone"}),
        ({"anger": 0.9, "anxiety": 0.1}, {"ANGRY": 0.9, "FEAR": 0.1}, set()),
    ],
)
def test_mismatch_rules(config, words, voice, expected):
    obs = Observation(ko(config, **words), en(config, **voice))
    assert kinds(mismatch_alerts(obs, [], config)) == expected


def low_voice(semitones: float, energy_db: float) -> Prosody:
    return Prosody(pitch_hz=110.0, energy_db=-30.0, speaking_rate=3.0,
                   pitch_semitones=semitones, energy_db_delta=energy_db, rate_ratio=0.8)


def test_low_prosody_tips_a_moderately_sad_voice(config):
    words, voice = ko(config, joy=1.0), en(config, SAD=0.3, HAPPY=0.7)
    assert not mismatch_alerts(Observation(words, voice, low_voice(0.0, 0.0)), [], config)
    alerts = mismatch_alerts(Observation(words, voice, low_voice(-3.0, -6.0)), [], config)
    assert kinds(alerts) == {"positive_words_depressed_tone"}
    assert alerts[0].evidence[0].prosody.pitch_semitones == -3.0


def test_alert_lists_the_sentences_and_evidence(config):
    happy, sad_voice, happy_voice = ko(config, joy=1.0), en(config, SAD=0.9, HAPPY=0.1), en(config, HAPPY=1.0)
    diary = Observation(happy, happy_voice)
    sentences = [Observation(happy, happy_voice, sentence=0), Observation(happy, sad_voice, sentence=1)]
    (alert,) = mismatch_alerts(diary, sentences, config)
    assert alert.kind == "positive_words_depressed_tone"
    assert alert.sentences == [1] and not alert.diary_level
    assert alert.evidence[0].voice["SAD"] == pytest.approx(0.9)
    assert alert.evidence[0].words_va.valence > 0 > alert.evidence[0].voice_va.valence


def test_severity_grows_with_the_gap(config):
    words = ko(config, joy=1.0)
    mild = mismatch_alerts(Observation(words, en(config, SAD=0.5, HAPPY=0.5)), [], config)[0]
    strong = mismatch_alerts(Observation(words, en(config, SAD=1.0)), [], config)[0]
    order = ("low", "medium", "high")
    assert strong.score > mild.score
    assert order.index(strong.severity) > order.index(mild.severity)
