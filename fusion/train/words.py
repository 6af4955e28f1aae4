"""Choose how a diary's words are read as a whole, on the dev diaries: ``fusion train alerts --words``.

Two steps, both on ``evalsets/diaries/dev.jsonl`` (never test):

1. ``[fusion] pleasant_shift``: the text model learned its six labels with one pleasant emotion among six,
   so it gives a pleasant sentence read unsurely a low P(joy). The shift is the one number that calibrates
   P(pleasant | emotional) on the dev diaries' emotional sentences (pleasant against the five others): the
   least log-loss of ``logit P(joy) + shift``.
2. ``[alerts] plain_words_emotion``, ``positive_words_valence``, ``negative_words_valence``: the diary
   polarity rule of ``fusion.combine.diary_words`` with the most dev diaries read right, among those that
   read no negative and at most ``MIXED_AS_POSITIVE`` of the mixed diaries as positive (the flagship alert
   must not fire on them); ties go to the strictest thresholds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from fusion.config import Config
from fusion.eval.diaries import read_diaries

DEV_DIARIES = Path(__file__).resolve().parents[2] / "evalsets" / "diaries" / "dev.jsonl"
SHIFTS = np.round(np.arange(0.0, 3.01, 0.05), 2)
PLAIN = np.round(np.arange(0.3, 0.751, 0.05), 2)
POSITIVE = np.round(np.arange(0.0, 0.601, 0.05), 2)
NEGATIVE = np.round(np.arange(-0.6, 0.001, 0.05), 2)
MIXED_AS_POSITIVE = 0.15


def fit_shift(probs: np.ndarray, pleasant: np.ndarray) -> float:
    """The log-odds shift of P(pleasant labels) with the least log-loss against ``pleasant`` (bool per row)."""
    z = logit(np.clip(probs, 1e-9, 1 - 1e-9))

    def loss(shift: float) -> float:
        q = np.clip(expit(z + shift), 1e-12, 1 - 1e-12)
        return float(-np.mean(np.where(pleasant, np.log(q), np.log(1 - q))))

    return float(min(SHIFTS, key=loss))


def calibrate(dev: Path, cfg: Config) -> dict:
    """The shift and the polarity thresholds chosen on the dev diaries, and the dev figures they give."""
    from fusion.combine import diary_words
    from fusion.text.model import load_text_model, read_words

    diaries = read_diaries(dev)
    model = load_text_model(cfg.text, cfg.labels.ko)
    words = read_words(model, [[s["text"] for s in d["sentences"]] for d in diaries], cfg.text)
    labels = [s["label"] for d in diaries for s in d["sentences"]]
    points = cfg.fusion.valence_arousal["ko"]
    pleasant_labels = [i for i, label in enumerate(cfg.labels.ko) if points[label][0] > 0]
    emotional = np.array([label in cfg.labels.ko for label in labels])
    probs = np.concatenate([w.probs for w in words])[:, pleasant_labels].sum(axis=1)
    pleasant = np.array([label in {cfg.labels.ko[i] for i in pleasant_labels} for label in labels])
    shift = fit_shift(probs[emotional], pleasant[emotional])

    open_cfg = cfg.with_updates(fusion={"pleasant_shift": shift},
                                alerts={"plain_words_emotion": 0.0, "positive_words_valence": np.inf,
                                        "negative_words_valence": -np.inf})
    valence = np.array([diary_words(w, open_cfg).point.valence for w in words])
    emotion = np.array([float(np.mean(1.0 - w.neutral)) for w in words])
    truth = np.array([d["polarity"] for d in diaries])
    best = None
    for plain in PLAIN:
        for pos in POSITIVE[::-1]:
            for neg in NEGATIVE:
                read = np.where(emotion < plain, "plain", np.where(valence >= pos, "positive",
                                np.where(valence <= neg, "negative", "mixed")))
                if (read[truth == "negative"] == "positive").any() \
                        or (read[truth == "mixed"] == "positive").mean() > MIXED_AS_POSITIVE:
                    continue
                score = (read == truth).mean()
                if best is None or score > best["dev_accuracy"]:
                    best = {"plain_words_emotion": float(plain), "positive_words_valence": float(pos),
                            "negative_words_valence": float(neg), "dev_accuracy": float(score),
                            "positive_read_positive": float((read[truth == "positive"] == "positive").mean()),
                            "mixed_read_positive": float((read[truth == "mixed"] == "positive").mean())}
    return {"dev": str(dev), "diaries": len(diaries), "emotional_sentences": int(emotional.sum()),
            "pleasant_share": float(pleasant[emotional].mean()), "pleasant_shift": shift, **(best or {})}


def print_result(result: dict) -> None:
    print(f"words: {result['diaries']} dev diaries ({result['dev']}), {result['emotional_sentences']} emotional "
          f"sentences, {result['pleasant_share']:.0%} of them pleasant")
    print(f"[fusion] pleasant_shift = {result['pleasant_shift']:g}  (least log-loss of P(pleasant | emotional))")
    if "dev_accuracy" not in result:
        print("no polarity thresholds read every negative diary as not positive")
        return
    print(f"[alerts] plain_words_emotion = {result['plain_words_emotion']:g}, positive_words_valence = "
          f"{result['positive_words_valence']:g}, negative_words_valence = {result['negative_words_valence']:g}")
    print(f"dev: polarity accuracy {result['dev_accuracy']:.3f}, positive diaries read positive "
          f"{result['positive_read_positive']:.3f}, mixed read positive {result['mixed_read_positive']:.3f}, "
          "negative read positive 0")
