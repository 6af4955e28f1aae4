"""Fusion arithmetic and mismatch rules of fusion/combine.py, on hand-built distributions."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from fusion.alerts import FLAGSHIP, MISMATCH_WORDS, SEVERITIES
from fusion.combine import (
    ALERT_RULES,
    Observation,
    depressed_score,
    fuse,
    mismatch_alerts,
    noise_margin,
    normalize,
    sad_share,
    valence_arousal,
)
from fusion.config import AlertConfig, default_config_path, load_config
from fusion.errors import ConfigError
from fusion.report import Alert, Prosody, ValenceArousal
from fusion.text.model import Words


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


def voice_pitch(semitones: float) -> Prosody:
    """Prosody whose pitch lies ``semitones`` from the neutral baseline's."""
    return Prosody(pitch_hz=200.0, energy_db=-20.0, speaking_rate=2.5,
                   pitch_semitones=semitones, energy_db_delta=-1.0, rate_ratio=0.9)


@pytest.mark.parametrize(
    "words, voice, semitones, expected",
    [
        # a sad voice under joyful words alerts, at the speaker's usual pitch too: the voice model is heard
        ({"joy": 0.9, "flustered": 0.1}, {"SAD": 0.8, "HAPPY": 0.2}, -3.0, {"positive_words_depressed_tone"}),
        ({"joy": 0.9, "flustered": 0.1}, {"SAD": 0.8, "HAPPY": 0.2}, 0.0, {"positive_words_depressed_tone"}),
        ({"joy": 0.9, "flustered": 0.1}, {"HAPPY": 0.8, "SURPRISE": 0.2}, 1.0, set()),
        # sad words in a sad voice agree
        ({"sadness": 0.9, "hurt": 0.1}, {"SAD": 0.9, "FEAR": 0.1}, -3.0, set()),
        ({"sadness": 0.9, "hurt": 0.1}, {"HAPPY": 0.9, "SURPRISE": 0.1}, 2.0, {"negative_words_upbeat_tone"}),
        # mild, low-arousal words (calibrated P(pleasant) 0.29) in an agitated voice
        ({"joy": 0.1, "hurt": 0.6, "sadness": 0.3}, {"ANGRY": 0.8, "FEAR": 0.2}, 1.0, {"calm_words_agitated_tone"}),
        ({"sadness": 0.9, "hurt": 0.1}, {"ANGRY": 0.8, "FEAR": 0.2}, 1.0, set()),
        ({"anger": 0.9, "anxiety": 0.1}, {"ANGRY": 0.9, "FEAR": 0.1}, 1.0, set()),
    ],
)
def test_mismatch_rules(config, words, voice, semitones, expected):
    obs = Observation(ko(config, **words), en(config, **voice), voice_pitch(semitones))
    assert kinds(mismatch_alerts(obs, [], config)) == expected


def test_a_lower_pitch_tips_a_borderline_voice_into_the_alert(config):
    a = config.alerts
    p_sad = a.depressed_score - 0.05
    words, voice = ko(config, joy=1.0), en(config, SAD=p_sad, HAPPY=1 - p_sad)
    assert not mismatch_alerts(Observation(words, voice, voice_pitch(0.0)), [], config)
    lower = -(0.1 / a.depressed_pitch_weight)  # semitones worth 0.1 of score
    assert kinds(mismatch_alerts(Observation(words, voice, voice_pitch(lower)), [], config)) == {FLAGSHIP}


def test_a_neutral_voice_drives_no_alert(config):
    """The voice model's NEUTRAL share is taken out of P(SAD) and pulls the voice to the neutral point."""
    words, voice = ko(config, joy=1.0), en(config, SAD=0.8, HAPPY=0.2)
    calm = Observation(words, voice, voice_pitch(0.0), voice_neutral=0.9)
    assert not mismatch_alerts(calm, [], config)
    (alert,) = mismatch_alerts(Observation(words, voice, voice_pitch(0.0), voice_neutral=0.4), [], config)
    assert alert.score == pytest.approx(0.8 * 0.6), "the same voice, less surely neutral: P(SAD) without its share"
    emotional = valence_arousal(voice, config.labels.en, config.fusion.valence_arousal["en"])
    n_valence, n_arousal = config.fusion.neutral_point
    point = calm.voice(config)
    assert point.valence == pytest.approx(0.1 * emotional.valence + 0.9 * n_valence, abs=1e-3)
    assert point.arousal == pytest.approx(0.1 * emotional.arousal + 0.9 * n_arousal, abs=1e-3)
    agitated = Observation(ko(config, joy=0.35, hurt=0.35, sadness=0.3), en(config, ANGRY=0.8, FEAR=0.2),
                           voice_pitch(1.0), voice_neutral=0.8)
    assert not mismatch_alerts(agitated, [], config), "an agitated distribution in a mostly neutral voice is calm"


def test_without_a_pitch_measurement_the_score_is_the_voice_model_alone(config):
    words, voice = ko(config, joy=1.0), en(config, SAD=0.5, HAPPY=0.5)
    unvoiced = Prosody(pitch_hz=None, energy_db=-40.0, speaking_rate=None)
    for prosody in (None, unvoiced):
        (alert,) = mismatch_alerts(Observation(words, voice, prosody), [], config)
        assert alert.score == pytest.approx(0.5)


def test_the_rule_fires_at_the_score_training_and_evaluation_compute_over_arrays(config):
    """fusion eval audio scores whole arrays of clips with sad_share and depressed_score (fusion train alerts with
    depressed_score, from a head whose P(SAD) is over all labels already); each clip's score is the one the rule
    fires at for the same voice and pitch (NaN: pitch not measured)."""
    p_sad, neutral = np.array([0.9, 0.6, 0.8, 0.7]), np.array([0.0, 0.2, 0.5, 0.1])
    pitch = np.array([0.0, -3.0, np.nan, 2.0])
    voices = np.stack([en(config, SAD=p, HAPPY=1 - p) for p in p_sad])
    shares = sad_share(voices, neutral, config.labels.en)
    assert np.allclose(shares, p_sad * (1 - neutral)), "a neutral voice's share is no sadness"
    scores = depressed_score(shares, pitch, config.alerts.depressed_pitch_weight)
    words = ko(config, joy=1.0)
    for i in range(len(p_sad)):
        prosody = None if np.isnan(pitch[i]) else voice_pitch(pitch[i])
        (alert,) = mismatch_alerts(Observation(words, voices[i], prosody, voice_neutral=neutral[i]), [], config)
        assert alert.score == round(float(scores[i]), 4)


def test_alert_lists_the_sentences_and_evidence(config):
    happy, sad_voice, happy_voice = ko(config, joy=1.0), en(config, SAD=0.9, HAPPY=0.1), en(config, HAPPY=1.0)
    diary = Observation(happy, happy_voice, voice_pitch(0.0))
    sentences = [Observation(happy, happy_voice, voice_pitch(0.5), sentence=0),
                 Observation(happy, sad_voice, voice_pitch(-3.0), sentence=1)]
    (alert,) = mismatch_alerts(diary, sentences, config)
    assert alert.kind == "positive_words_depressed_tone"
    assert alert.sentences == [1] and not alert.diary_level
    evidence = alert.evidence[0]
    assert evidence.voice["SAD"] == pytest.approx(0.9) and evidence.prosody.pitch_semitones == -3.0
    assert evidence.words_va.valence > 0 > evidence.voice_va.valence


def test_a_single_sentence_needs_stronger_evidence_than_the_diary(config):
    a = config.alerts
    assert a.depressed_score_sentence > a.depressed_score
    middle = (a.depressed_score + a.depressed_score_sentence) / 2 - a.depressed_pitch_weight * 2.0
    words, voice = ko(config, joy=1.0), en(config, SAD=middle, HAPPY=1 - middle)
    moderate = voice_pitch(-2.0)  # score between the two thresholds: enough for the diary, not for one sentence
    assert kinds(mismatch_alerts(Observation(words, voice, moderate), [], config)) == {FLAGSHIP}
    neutral_diary = Observation(words, en(config, HAPPY=1.0), voice_pitch(0.0))
    assert not mismatch_alerts(neutral_diary, [Observation(words, voice, moderate, sentence=0)], config)
    drop = (a.depressed_score_sentence - middle) / a.depressed_pitch_weight + 0.5
    strong = Observation(words, voice, voice_pitch(-drop), sentence=0)
    assert mismatch_alerts(neutral_diary, [strong], config)[0].sentences == [0]


def test_a_noisier_recording_needs_a_more_depressed_voice(config):
    """Noise moves P(SAD) of calm voices up: the same voice that raises the flagship in a clean recording does not
    in one near the quality gate's SNR; the margin falls linearly from the gate to depressed_clean_snr_db."""
    a, gate = config.alerts, config.quality.min_snr_db
    assert a.depressed_noise_margin > 0 and a.depressed_clean_snr_db > gate
    assert noise_margin(None, config) == 0 and noise_margin(a.depressed_clean_snr_db + 10, config) == 0
    assert noise_margin(gate, config) == pytest.approx(a.depressed_noise_margin)
    assert noise_margin((gate + a.depressed_clean_snr_db) / 2, config) == pytest.approx(a.depressed_noise_margin / 2)
    p_sad = a.depressed_score + a.depressed_noise_margin / 2
    words, voice = ko(config, joy=1.0), en(config, SAD=p_sad, HAPPY=1 - p_sad)
    fires = {snr: bool(mismatch_alerts(Observation(words, voice, voice_pitch(0.0), snr_db=snr), [], config))
             for snr in (None, 60.0, a.depressed_clean_snr_db - 1, gate + 1)}
    assert fires == {None: True, 60.0: True, a.depressed_clean_snr_db - 1: True, gate + 1: False}


def test_severity_grows_with_the_depressed_score(config):
    low, _, high = config.alerts.severity[FLAGSHIP]
    words, voice = ko(config, joy=1.0), en(config, SAD=low + 0.01, HAPPY=0.99 - low)
    mild = mismatch_alerts(Observation(words, voice, voice_pitch(0.0)), [], config)[0]
    drop = (high - low) / config.alerts.depressed_pitch_weight + 1.0
    strong = mismatch_alerts(Observation(words, voice, voice_pitch(-drop)), [], config)[0]
    assert (mild.severity, strong.severity) == ("low", "high")
    assert strong.score > mild.score


@pytest.mark.parametrize("kind", list(ALERT_RULES))
def test_severity_steps_of_every_kind(config, kind):
    """Low below the second step, medium from it, high from the third: a score just either side of each step."""
    from fusion.combine import _severity

    _, medium, high = steps = config.alerts.severity[kind]
    assert _severity(steps[0], steps) == _severity(medium - 0.01, steps) == "low"
    assert _severity(medium, steps) == _severity(medium + 0.01, steps) == _severity(high - 0.01, steps) == "medium"
    assert _severity(high, steps) == _severity(high + 0.01, steps) == _severity(high + 5.0, steps) == "high"


@pytest.mark.parametrize("side", [-1, 1], ids=["below", "at"])
@pytest.mark.parametrize("step", [1, 2], ids=["medium", "high"])
def test_the_flagship_s_severity_follows_its_steps(config, step, side):
    """A diary score just either side of the medium step by P(SAD) alone, and of the high step with the pitch's
    share (depressed_pitch_weight a semitone below the baseline), at the steps the config sets."""
    steps, weight = config.alerts.severity[FLAGSHIP], config.alerts.depressed_pitch_weight
    score = steps[step] + side * 0.01
    p_sad = score if step == 1 else steps[1] + 0.01
    assert 0 < p_sad < 1 and score >= p_sad
    voice = en(config, SAD=p_sad, HAPPY=1 - p_sad)
    obs = Observation(ko(config, joy=1.0), voice, voice_pitch(-(score - p_sad) / weight))
    (alert,) = mismatch_alerts(obs, [], config)
    assert (alert.kind, alert.severity) == (FLAGSHIP, SEVERITIES[step if side > 0 else step - 1])
    assert alert.score == pytest.approx(score, abs=1e-4)


def test_the_flagship_never_weakens_as_the_voice_sounds_sadder(config):
    """From the firing threshold up, a higher P(SAD) or a lower pitch never lowers the alert's score or severity."""
    grid = [[mismatch_alerts(Observation(ko(config, joy=1.0), en(config, SAD=p, HAPPY=1 - p), voice_pitch(-drop)),
                             [], config) for drop in (0.0, 1.0, 3.0, 6.0)]
            for p in np.linspace(config.alerts.depressed_score, 0.99, 8)]
    assert all(len(cell) == 1 and cell[0].kind == FLAGSHIP for row in grid for cell in row)
    score = np.array([[cell[0].score for cell in row] for row in grid])
    level = np.array([[SEVERITIES.index(cell[0].severity) for cell in row] for row in grid])
    for axis in (0, 1):
        assert (np.diff(score, axis=axis) > 0).all() and (np.diff(level, axis=axis) >= 0).all()
    assert level.min() == 0 and level.max() == 2, "the sweep spans every severity"


def test_several_alerts_come_most_severe_first_then_by_score(config):
    """All three kinds in one diary: a medium flagship for the whole diary, a high upbeat-voice sentence and a low
    agitated-voice sentence whose score (0.78) is above the flagship's (0.75): severity orders before score."""
    from fusion.combine import words_point

    plain = words_point(ko(config, joy=1.0), True, config)
    diary = Observation(ko(config, joy=1.0), en(config, SAD=0.75, HAPPY=0.25), voice_pitch(0.0))
    upbeat = Observation(ko(config, sadness=0.9, hurt=0.1), en(config, HAPPY=0.9, SURPRISE=0.1), voice_pitch(1.0),
                         sentence=0)
    agitated = Observation(ko(config, joy=1.0), en(config, ANGRY=0.8, FEAR=0.2), voice_pitch(1.0), sentence=1,
                           words_va=plain)
    alerts = mismatch_alerts(diary, [upbeat, agitated], config)
    assert [(a.kind, a.severity) for a in alerts] == [("negative_words_upbeat_tone", "high"), (FLAGSHIP, "medium"),
                                                      ("calm_words_agitated_tone", "low")]
    # valence gap 0.75 - (-0.78)
    assert [a.score for a in alerts] == pytest.approx([0.75 - -0.78, 0.75, 0.78], abs=1e-4)
    assert [(a.diary_level, a.sentences) for a in alerts] == [(False, [0]), (True, []), (False, [1])]
    # two high alerts: the larger score first (a flagship sentence at -5 semitones scores 0.8 + 0.5 = 1.3)
    sad_sentence = Observation(ko(config, joy=1.0), en(config, SAD=0.8, HAPPY=0.2), voice_pitch(-5.0), sentence=2)
    calm_diary = Observation(ko(config, joy=1.0), en(config, HAPPY=1.0), voice_pitch(0.0))
    alerts = mismatch_alerts(calm_diary, [sad_sentence, upbeat], config)
    assert [(a.kind, a.severity, a.score) for a in alerts] == [("negative_words_upbeat_tone", "high", 1.53),
                                                               (FLAGSHIP, "high", 1.3)]


def test_a_neutral_sentence_drives_no_positive_words_alert(config):
    from fusion.combine import words_point

    joyful_probs = ko(config, joy=0.6, anger=0.4)
    plain = words_point(joyful_probs, True, config)
    assert (plain.valence, plain.arousal) == tuple(config.fusion.neutral_point)
    sad_low = en(config, SAD=0.9, HAPPY=0.1)
    diary = Observation(joyful_probs, en(config, HAPPY=1.0), voice_pitch(0.0), words_va=plain)
    neutral = Observation(joyful_probs, sad_low, voice_pitch(-4.0), sentence=0, words_va=plain)
    assert not mismatch_alerts(diary, [neutral], config)
    agitated = Observation(joyful_probs, en(config, ANGRY=0.9, FEAR=0.1), voice_pitch(2.0), sentence=0, words_va=plain)
    assert kinds(mismatch_alerts(diary, [agitated], config)) == {"calm_words_agitated_tone"}


def words(config, *rows: tuple[dict, float]) -> Words:
    """A diary's text-model output: (probabilities by English name, P(neutral)) per sentence."""
    probs = np.array([ko(config, **p) for p, _ in rows])
    neutral = np.array([q for _, q in rows])
    return Words(probs, neutral, neutral >= config.text.neutral_threshold)


def test_a_diary_s_words_weigh_each_sentence_by_how_surely_it_carries_an_emotion(config):
    from fusion.combine import diary_words, words_point

    joy, sad = words_point(ko(config, joy=1.0), False, config), words_point(ko(config, sadness=1.0), False, config)
    read = diary_words(words(config, ({"joy": 1.0}, 0.0), ({"joy": 1.0}, 0.9), ({"sadness": 1.0}, 0.0)), config)
    assert read.point.valence == pytest.approx((joy.valence + 0.1 * joy.valence + sad.valence) / 2.1, abs=1e-4)
    assert read.points[1] == words_point(ko(config, joy=1.0), True, config), "a sentence marked plain shows as plain"
    assert read.polarity == "mixed"
    good = diary_words(words(config, ({"joy": 1.0}, 0.1), ({"joy": 0.8, "flustered": 0.2}, 0.8), ({"joy": 1.0}, 0.2)),
                       config)
    assert good.polarity == "positive" and good.point.valence == pytest.approx(joy.valence, abs=0.05)
    bad = diary_words(words(config, ({"sadness": 1.0}, 0.1), ({"hurt": 1.0}, 0.2)), config)
    assert bad.polarity == "negative"
    plain = diary_words(words(config, ({"joy": 1.0}, 0.8), ({"anger": 1.0}, 0.9)), config)
    assert plain.polarity == "plain" and plain.point == words_point(ko(config, joy=1.0), True, config)
    assert diary_words(words(config), config).polarity == "plain", "no sentences, no emotion"


def test_an_unsure_pleasant_sentence_reads_pleasant(config):
    """The six labels hold one pleasant emotion against five unpleasant ones: P(joy) 0.42 over an unpleasant spread
    is, calibrated, a sentence more likely pleasant than not, so its words sit on the pleasant side."""
    from fusion.combine import pleasant_probability, words_point

    unsure = ko(config, joy=0.42, flustered=0.12, anger=0.1, anxiety=0.12, hurt=0.12, sadness=0.12)
    assert pleasant_probability(unsure, config) > 0.7
    assert words_point(unsure, False, config).valence > config.alerts.positive_words_valence
    uncalibrated = config.with_updates(fusion={"pleasant_shift": 0.0})
    assert words_point(unsure, False, uncalibrated).valence < 0.1, "the expected valence over six labels"


def test_the_verdict_says_agree_only_when_words_and_voice_sit_together(config):
    from fusion.combine import AGREE, diary_words, verdict

    happy = diary_words(words(config, ({"joy": 1.0}, 0.0), ({"joy": 0.9, "anxiety": 0.1}, 0.1)), config)
    assert verdict(happy, ValenceArousal(valence=0.6, arousal=0.4), [], config) == AGREE
    apart = verdict(happy, ValenceArousal(valence=-0.45, arousal=0.0), [], config)
    assert apart.startswith("The voice sounds lower than the words") and "below the alert thresholds" in apart
    calm = verdict(happy, ValenceArousal(valence=0.6, arousal=-0.5), [], config)
    assert calm.startswith("The voice sounds calmer")
    assert verdict(happy, None, [], config) == "No voice to compare the words with."
    assert verdict(diary_words(words(config), config), ValenceArousal(valence=0, arousal=0), [], config) \
        == "No words to compare the voice with."


def test_the_rule_table_is_the_one_list_of_alert_kinds(config):
    """Rules, config, report schema and every threshold of [alerts] follow the kinds of fusion.alerts."""
    assert list(ALERT_RULES) == list(MISMATCH_WORDS) and all(MISMATCH_WORDS.values())
    assert set(config.alerts.severity) == set(MISMATCH_WORDS)
    assert Alert.model_json_schema()["properties"]["kind"]["enum"] == list(MISMATCH_WORDS)
    read = {name for rule in ALERT_RULES.values() for name in rule.thresholds}
    # plain_words_emotion is read by diary_words (the words' polarity), agree_gap by verdict
    assert read == set(AlertConfig.model_fields) - {"severity", "plain_words_emotion", "agree_gap"}, \
        "each [alerts] threshold is read by a named rule"


@pytest.mark.parametrize("edit, problem", [
    (lambda toml: toml.replace("calm_words_agitated_tone = [", "# ["), "missing ['calm_words_agitated_tone']"),
    (lambda toml: toml.replace("calm_words_agitated_tone = [", "calm_words_angry_tone = ["),
     "unknown ['calm_words_angry_tone']"),
])
def test_a_severity_table_that_disagrees_with_the_rules_is_refused(tmp_path, edit, problem):
    path = tmp_path / "config.toml"
    path.write_text(edit(default_config_path().read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(problem)) as info:
        load_config(path)
    assert info.value.path == str(path) and "[alerts.severity]" in str(info.value)


def test_an_alert_of_an_unknown_kind_is_refused():
    with pytest.raises(ValidationError, match="unknown alert kind"):
        Alert(kind="loud_words", severity="low", score=0.0, diary_level=True, sentences=[], evidence=[])
