"""Combine words and voice: map the label sets onto each other, fuse, flag disagreement.

The fusion is the original backend's: text distribution (KO) mapped to EN with
``M_KO2EN``, ``fused_en = norm(w_t * t_en + w_a * a_en)``, mapped back with
``M_EN2KO``. The original averaged disagreement away; here words and voice are
also placed on one valence/arousal plane and compared, sentence by sentence and
for the whole diary, and each rule of :data:`ALERT_RULES` (one per kind of
``fusion.alerts.MISMATCH_WORDS``) that fires becomes an :class:`~fusion.report.Alert` carrying its evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit, logit

from fusion.alerts import AGITATED, FLAGSHIP, SEVERITIES, UPBEAT
from fusion.report import Alert, AlertEvidence, Polarity, Prosody, ValenceArousal

if TYPE_CHECKING:
    from fusion.config import Config
    from fusion.text.model import Words


def normalize(p: np.ndarray, eps: float) -> np.ndarray:
    """Clip to ``[eps, 1]`` and rescale to sum 1 (the original's ``norm``)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0)
    return p / p.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Fused:
    """The fused distribution in both label sets."""

    en: np.ndarray
    ko: np.ndarray


def fuse(text_ko: np.ndarray | None, voice_en: np.ndarray, cfg: Config) -> Fused:
    """Fuse a KO text distribution with an EN voice distribution, as the original backend did.

    With no words (``text_ko`` None: nothing was said) the voice stands alone.
    """
    f = cfg.fusion
    voice = normalize(voice_en, f.eps)
    if text_ko is None:
        fused_en = voice
    else:
        t_en = normalize(np.asarray(f.ko2en) @ normalize(text_ko, f.eps), f.eps)
        fused_en = normalize(f.text_weight * t_en + f.audio_weight * voice, f.eps)
    return Fused(en=fused_en, ko=normalize(np.asarray(f.en2ko) @ fused_en, f.eps))


def valence_arousal(
    probs: np.ndarray, labels: tuple[str, ...], points: dict[str, tuple[float, float]]
) -> ValenceArousal:
    """Expected valence/arousal of a distribution over ``labels``."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(len(labels), 1.0 / len(labels))
    va = p @ np.array([points[label] for label in labels])
    return ValenceArousal(valence=round(float(va[0]), 4), arousal=round(float(va[1]), 4))


def pleasant_probability(probs: np.ndarray, cfg: Config) -> np.ndarray:
    """P(pleasant | emotional words) of each row of ``probs``: the pleasant labels (valence above 0 in
    ``[fusion.valence_arousal.ko]``) against the others, the log-odds moved by ``[fusion] pleasant_shift``.

    The six labels hold one pleasant emotion and five unpleasant ones, so an unsure reading of a pleasant
    sentence spreads most of its mass over unpleasant labels; the shift is fitted on dev so that the
    pleasant share is calibrated for pleasant against unpleasant sentences.
    """
    points = cfg.fusion.valence_arousal["ko"]
    pleasant = np.array([points[label][0] > 0 for label in cfg.labels.ko])
    p = np.clip(np.asarray(probs, dtype=np.float64)[..., pleasant].sum(axis=-1), 1e-9, 1 - 1e-9)
    return expit(logit(p) + cfg.fusion.pleasant_shift)


def words_point(probs: np.ndarray, plain: bool, cfg: Config) -> ValenceArousal:
    """Where a sentence's words sit: the neutral point when plain, else the pleasant and unpleasant labels'
    points weighed by the calibrated P(pleasant) (each side's own labels by their probabilities)."""
    if plain:
        valence, arousal = cfg.fusion.neutral_point
        return ValenceArousal(valence=valence, arousal=arousal)
    labels, points = cfg.labels.ko, cfg.fusion.valence_arousal["ko"]
    p = np.asarray(probs, dtype=np.float64)
    xy = np.array([points[label] for label in labels])
    good = xy[:, 0] > 0
    share = float(pleasant_probability(p, cfg))
    va = sum(w * (p[side] / max(p[side].sum(), 1e-12)) @ xy[side] for w, side in ((share, good), (1 - share, ~good)))
    return ValenceArousal(valence=round(float(va[0]), 4), arousal=round(float(va[1]), 4))


def voice_point(voice_en: np.ndarray, neutral: float, cfg: Config) -> ValenceArousal:
    """Where the voice sits: its emotions' expected point, pulled to the neutral point by P(neutral voice)."""
    emotional = valence_arousal(voice_en, cfg.labels.en, cfg.fusion.valence_arousal["en"])
    n_valence, n_arousal = cfg.fusion.neutral_point
    return ValenceArousal(valence=round((1 - neutral) * emotional.valence + neutral * n_valence, 4),
                          arousal=round((1 - neutral) * emotional.arousal + neutral * n_arousal, 4))


@dataclass(frozen=True)
class DiaryWords:
    """Where a diary's words sit, sentence by sentence and as a whole, and the polarity that follows."""

    points: list[ValenceArousal]
    point: ValenceArousal
    polarity: Polarity


def diary_words(words: Words, cfg: Config) -> DiaryWords:
    """The diary's words as a whole, and their polarity by ``[alerts]``.

    Each sentence's emotional reading (its point were it not plain) is weighed by how surely it carries an
    emotion, 1 - P(neutral), so a diary's few plain-sounding but emotional sentences still count and its
    plain ones hardly do; a sentence marked plain still shows at the neutral point. The diary is plain when
    that weight averages below ``plain_words_emotion``, positive at ``positive_words_valence`` or above,
    negative at ``negative_words_valence`` or below, mixed in between.
    """
    emotional = [words_point(p, False, cfg) for p in words.probs]
    points = [words_point(p, True, cfg) if m else e for p, m, e in zip(words.probs, words.marked, emotional)]
    weight = 1.0 - np.asarray(words.neutral, dtype=np.float64)
    a = cfg.alerts
    if not len(weight) or weight.mean() < a.plain_words_emotion:
        return DiaryWords(points, words_point(np.zeros(len(cfg.labels.ko)), True, cfg), "plain")
    valence = float(weight @ [p.valence for p in emotional] / weight.sum())
    arousal = float(weight @ [p.arousal for p in emotional] / weight.sum())
    polarity = ("positive" if valence >= a.positive_words_valence
                else "negative" if valence <= a.negative_words_valence else "mixed")
    return DiaryWords(points, ValenceArousal(valence=round(valence, 4), arousal=round(arousal, 4)), polarity)


@dataclass(frozen=True)
class Observation:
    """Words and voice over one stretch of the diary (a sentence, or all of it).

    ``words_va`` overrides the point read from ``text_ko`` (a neutral sentence, or a
    diary whose words are the mean of its sentences'). ``voice_neutral`` is the voice
    model's probability that the voice carries no emotion; ``snr_db`` the recording's estimated
    speech over background (``fusion.quality``; None: not measured, taken as clean).
    """

    text_ko: np.ndarray
    voice_en: np.ndarray
    prosody: Prosody | None = None
    sentence: int | None = None
    words_va: ValenceArousal | None = None
    voice_neutral: float = 0.0
    snr_db: float | None = None

    def words(self, cfg: Config) -> ValenceArousal:
        return self.words_va or words_point(self.text_ko, False, cfg)

    def voice(self, cfg: Config) -> ValenceArousal:
        return voice_point(self.voice_en, self.voice_neutral, cfg)


def _severity(score: float, steps: tuple[float, ...]) -> str:
    """``low`` below ``steps[1]``, ``medium`` below ``steps[2]``, else ``high``."""
    return SEVERITIES[int(np.clip(np.searchsorted(steps, score, side="right") - 1, 0, len(SEVERITIES) - 1))]


def depressed_score(p_sad, pitch_semitones, pitch_weight: float):
    """The flagship's depressed-voice score: P(SAD) of the voice over all its labels, the neutral voice's share
    included (a calm voice scores low), plus ``pitch_weight`` per semitone of pitch below the baseline; an
    unmeasured pitch (None or NaN) adds nothing.

    Elementwise over arrays. The one formula the rule fires on (``[alerts] depressed_pitch_weight``),
    ``fusion eval audio`` ranks and ``fusion train alerts`` chooses the weight and thresholds with.
    """
    pitch = np.asarray(pitch_semitones, dtype=np.float64)
    return p_sad + pitch_weight * np.where(np.isfinite(pitch), np.maximum(-pitch, 0.0), 0.0)


def sad_share(emotions, voice_neutral, labels: Sequence[str]):
    """P(SAD) of a voice over all its labels, what ``depressed_score`` starts from: SAD among the emotions (which
    sum to 1) times the share that is not a neutral voice, so a calm voice has little. One voice, or rows of them."""
    return np.asarray(emotions)[..., list(labels).index("SAD")] * (1.0 - np.asarray(voice_neutral))


def snr_ramp(snr_db, start_db: float, gate_db: float):
    """0 at ``start_db`` and above, rising linearly to 1 at ``gate_db`` and below; 0 for an unmeasured SNR (None or
    NaN). Elementwise over arrays."""
    snr = np.asarray(np.nan if snr_db is None else snr_db, dtype=np.float64)
    return np.where(np.isfinite(snr), np.clip((start_db - snr) / (start_db - gate_db), 0.0, 1.0), 0.0)


def noise_margin(snr_db, cfg: Config):
    """What a noisy recording adds to the depressed-voice thresholds (noise moves P(SAD) of calm and angry voices
    up): ``[alerts] depressed_noise_margin`` at ``[quality] min_snr_db`` (below it no voice alert is raised),
    falling linearly to none at ``depressed_clean_snr_db``; none for an unmeasured SNR. Elementwise over arrays."""
    a = cfg.alerts
    return a.depressed_noise_margin * snr_ramp(snr_db, a.depressed_clean_snr_db, cfg.quality.min_snr_db)


def _positive_words_depressed_tone(obs: Observation, cfg: Config) -> float | None:
    """Pleasant words in a depressed voice: the depressed-voice score, stricter for one sentence and in noise."""
    a = cfg.alerts
    p_sad = float(sad_share(obs.voice_en, obs.voice_neutral, cfg.labels.en))
    pitch = obs.prosody.pitch_semitones if obs.prosody is not None else None
    depressed = float(depressed_score(p_sad, pitch, a.depressed_pitch_weight))
    depressed_min = (a.depressed_score if obs.sentence is None else a.depressed_score_sentence) \
        + float(noise_margin(obs.snr_db, cfg))
    if obs.words(cfg).valence >= a.positive_words_valence and depressed >= depressed_min:
        return depressed
    return None


def _negative_words_upbeat_tone(obs: Observation, cfg: Config) -> float | None:
    """Unpleasant words in a pleasant, lively voice: the valence gap."""
    a, words, voice = cfg.alerts, obs.words(cfg), obs.voice(cfg)
    if words.valence <= a.negative_words_valence and voice.valence >= a.upbeat_voice_valence \
            and voice.arousal >= a.upbeat_voice_arousal:
        return voice.valence - words.valence
    return None


def _calm_words_agitated_tone(obs: Observation, cfg: Config) -> float | None:
    """Calm, mild words (plainly sad words are not calm) in an agitated voice: the arousal gap."""
    a, words, voice = cfg.alerts, obs.words(cfg), obs.voice(cfg)
    calm_words = words.arousal <= a.calm_words_arousal and abs(words.valence) <= a.calm_words_valence
    if calm_words and voice.arousal >= a.agitated_voice_arousal:
        return voice.arousal - words.arousal
    return None


@dataclass(frozen=True)
class AlertRule:
    """When one kind of mismatch (named, and worded, in ``fusion.alerts``) fires.

    ``score`` returns None when the rule does not fire, else the score its severity is read
    from (steps in ``[alerts.severity]`` under the kind); ``thresholds`` names the
    ``[alerts]`` fields it reads.
    """

    score: Callable[[Observation, Config], float | None]
    thresholds: tuple[str, ...]


ALERT_RULES: dict[str, AlertRule] = {
    FLAGSHIP: AlertRule(_positive_words_depressed_tone, ("positive_words_valence", "depressed_pitch_weight",
                                                         "depressed_score", "depressed_score_sentence",
                                                         "depressed_noise_margin", "depressed_clean_snr_db")),
    UPBEAT: AlertRule(_negative_words_upbeat_tone,
                      ("negative_words_valence", "upbeat_voice_valence", "upbeat_voice_arousal")),
    AGITATED: AlertRule(_calm_words_agitated_tone,
                        ("calm_words_arousal", "calm_words_valence", "agitated_voice_arousal")),
}


def _evidence(obs: Observation, cfg: Config) -> AlertEvidence:
    return AlertEvidence(
        sentence=obs.sentence,
        words=dict(zip(cfg.labels.ko, np.round(obs.text_ko, 4).tolist())),
        voice=dict(zip(cfg.labels.en, np.round(obs.voice_en, 4).tolist())),
        words_va=obs.words(cfg),
        voice_va=obs.voice(cfg),
        voice_neutral=round(obs.voice_neutral, 4),
        prosody=obs.prosody,
    )


def mismatch_alerts(diary: Observation, sentences: list[Observation], cfg: Config) -> list[Alert]:
    """One alert per kind that fires for the diary or any sentence, most severe first.

    An alert lists the sentences that triggered it and the evidence for each
    (and for the whole diary when the diary as a whole triggers it).
    """
    found: dict[str, list[tuple[float, Observation]]] = {}
    for obs in [diary, *sentences]:
        for kind, rule in ALERT_RULES.items():
            if (score := rule.score(obs, cfg)) is not None:
                found.setdefault(kind, []).append((score, obs))
    alerts = []
    for kind, hits in found.items():
        score = max(s for s, _ in hits)
        alerts.append(
            Alert(
                kind=kind,
                severity=_severity(score, cfg.alerts.severity[kind]),
                score=round(score, 4),
                diary_level=any(obs.sentence is None for _, obs in hits),
                sentences=sorted(obs.sentence for _, obs in hits if obs.sentence is not None),
                evidence=[_evidence(obs, cfg) for _, obs in hits],
            )
        )
    return sorted(alerts, key=lambda al: (-SEVERITIES.index(al.severity), -al.score))


def heard_well(alerts: list[Alert], problems: tuple[str, ...] | list[str]) -> tuple[list[Alert], list[str]]:
    """(alerts raised, kinds withheld): every words-vs-voice alert stands down when the recording is too poor to
    judge a voice (``fusion.quality``), since the voice it would rest on cannot be heard."""
    return ([], [a.kind for a in alerts]) if problems else (alerts, [])


AGREE = "Words and voice agree."


def verdict(words: DiaryWords, voice: ValenceArousal | None, alerts: list[Alert], cfg: Config) -> str:
    """One sentence on how words and voice stand, the same in every rendering of the report.

    "Agree" only when no alert fires and the two sit within ``[alerts] agree_gap`` of each other on both axes;
    otherwise the larger gap is named, with both values, and that it stays below the alert thresholds.
    """
    if alerts:
        return "Words and voice disagree: see the alerts."
    if voice is None:
        return "No voice to compare the words with."
    if not words.points:
        return "No words to compare the voice with."
    gaps = {"valence": voice.valence - words.point.valence, "arousal": voice.arousal - words.point.arousal}
    axis = max(gaps, key=lambda k: abs(gaps[k]))
    if abs(gaps[axis]) < cfg.alerts.agree_gap:
        return AGREE
    how = {("valence", True): "brighter", ("valence", False): "lower",
           ("arousal", True): "more agitated", ("arousal", False): "calmer"}[axis, gaps[axis] > 0]
    return (f"The voice sounds {how} than the words ({axis} {getattr(voice, axis):+.2f} against "
            f"{getattr(words.point, axis):+.2f}), below the alert thresholds.")
