"""Combine words and voice: map the label sets onto each other, fuse, flag disagreement.

The fusion is the original backend's: text distribution (KO) mapped to EN with
``M_KO2EN``, ``fused_en = norm(w_t * t_en + w_a * a_en)``, mapped back with
``M_EN2KO``. The original averaged disagreement away; here words and voice are
also placed on one valence/arousal plane and compared, sentence by sentence and
for the whole diary, and each rule of ``[alerts]`` that fires becomes an
:class:`~fusion.report.Alert` carrying its evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion.config import Config
from fusion.report import Alert, AlertEvidence, Prosody, ValenceArousal

SEVERITIES = ("low", "medium", "high")


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


def valence_arousal(probs: np.ndarray, labels: tuple[str, ...], points: dict[str, tuple[float, float]]) -> ValenceArousal:
    """Expected valence/arousal of a distribution over ``labels``."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(len(labels), 1.0 / len(labels))
    va = p @ np.array([points[label] for label in labels])
    return ValenceArousal(valence=round(float(va[0]), 4), arousal=round(float(va[1]), 4))


def words_point(text_ko: np.ndarray, neutral: bool, cfg: Config) -> ValenceArousal:
    """Where a sentence's words sit: the neutral point when the text model marks it neutral."""
    if neutral:
        valence, arousal = cfg.fusion.neutral_point
        return ValenceArousal(valence=valence, arousal=arousal)
    return valence_arousal(text_ko, cfg.labels.ko, cfg.fusion.valence_arousal["ko"])


def mean_point(points: list[ValenceArousal]) -> ValenceArousal:
    """The centre of several points (the diary's words, from its sentences')."""
    return ValenceArousal(valence=round(float(np.mean([p.valence for p in points])), 4),
                          arousal=round(float(np.mean([p.arousal for p in points])), 4))


@dataclass(frozen=True)
class Observation:
    """Words and voice over one stretch of the diary (a sentence, or all of it).

    ``words_va`` overrides the point read from ``text_ko`` (a neutral sentence, or a
    diary whose words are the mean of its sentences').
    """

    text_ko: np.ndarray
    voice_en: np.ndarray
    prosody: Prosody | None = None
    sentence: int | None = None
    words_va: ValenceArousal | None = None

    def words(self, cfg: Config) -> ValenceArousal:
        return self.words_va or words_point(self.text_ko, False, cfg)


def _severity(score: float, steps: tuple[float, ...]) -> str:
    """``low`` below ``steps[1]``, ``medium`` below ``steps[2]``, else ``high``."""
    return SEVERITIES[int(np.clip(np.searchsorted(steps, score, side="right") - 1, 0, len(SEVERITIES) - 1))]


def depressed_score(voice_en: np.ndarray, prosody: Prosody | None, cfg: Config) -> float:
    """P(SAD) plus a weight per semitone of pitch below the neutral baseline (no pitch, no bonus)."""
    drop = -prosody.pitch_semitones if prosody is not None and prosody.pitch_semitones is not None else 0.0
    return float(voice_en[cfg.labels.en.index("SAD")]) + cfg.alerts.depressed_pitch_weight * max(drop, 0.0)


def _rules(obs: Observation, cfg: Config) -> list[tuple[str, float]]:
    """The alert kinds one observation triggers, each with the score its severity is read from."""
    a = cfg.alerts
    va_points = cfg.fusion.valence_arousal
    words = obs.words(cfg)
    voice = valence_arousal(obs.voice_en, cfg.labels.en, va_points["en"])
    fired = []
    depressed = depressed_score(obs.voice_en, obs.prosody, cfg)
    depressed_min = a.depressed_score if obs.sentence is None else a.depressed_score_sentence
    if words.valence >= a.positive_words_valence and depressed >= depressed_min:
        fired.append(("positive_words_depressed_tone", depressed))
    if words.valence <= a.negative_words_valence and voice.valence >= a.upbeat_voice_valence and voice.arousal >= a.upbeat_voice_arousal:
        fired.append(("negative_words_upbeat_tone", voice.valence - words.valence))
    calm_words = words.arousal <= a.calm_words_arousal and abs(words.valence) <= a.calm_words_valence
    if calm_words and voice.arousal >= a.agitated_voice_arousal:
        fired.append(("calm_words_agitated_tone", voice.arousal - words.arousal))
    return fired


def _evidence(obs: Observation, cfg: Config) -> AlertEvidence:
    va_points = cfg.fusion.valence_arousal
    return AlertEvidence(
        sentence=obs.sentence,
        words=dict(zip(cfg.labels.ko, np.round(obs.text_ko, 4).tolist())),
        voice=dict(zip(cfg.labels.en, np.round(obs.voice_en, 4).tolist())),
        words_va=obs.words(cfg),
        voice_va=valence_arousal(obs.voice_en, cfg.labels.en, va_points["en"]),
        prosody=obs.prosody,
    )


def mismatch_alerts(diary: Observation, sentences: list[Observation], cfg: Config) -> list[Alert]:
    """One alert per kind that fires for the diary or any sentence, most severe first.

    An alert lists the sentences that triggered it and the evidence for each
    (and for the whole diary when the diary as a whole triggers it).
    """
    found: dict[str, list[tuple[float, Observation]]] = {}
    for obs in [diary, *sentences]:
        for kind, score in _rules(obs, cfg):
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
