"""Choose the depressed-voice rule of ``[alerts]`` by measurement: ``fusion train alerts``.

The rule (``fusion.combine.depressed_score``, the one formula scored here too): P(SAD) of the
voice, its neutral share taken out, plus ``depressed_pitch_weight`` per semitone of pitch below
the neutral baseline, at or above ``depressed_score`` for the whole diary and ``depressed_score_sentence`` for one
sentence. Measured on the train and dev speakers only (lexically balanced clips, and the
scripted speakers' neutral clips): sad voices against happy, neutral and calm ones, each
clip scored by a voice head that never heard its speaker (speaker-grouped folds) and its
pitch taken against the ``auto`` baseline, as a new user's diary is. The weight and the diary
threshold maximise the balanced accuracy averaged over the datasets; the sentence threshold
is the lowest that keeps the false alarms on non-sad clips at ``SENTENCE_FALSE_ALARMS``
(a sentence is short, noisy evidence, and a diary holds many).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from fusion.audio import load_audio
from fusion.combine import depressed_score
from fusion.config import default_config
from fusion.eval.metrics import uar
from fusion.progress import track
from fusion.train.voice import Candidate, Corpus, fit, load_corpus, model_labels, out_of_fold
from fusion.voice.model import EMBEDDED_ROOT
from fusion.voice.prosody import prosody, resolve_baseline
from fusion.voice.whisper import ARCHITECTURE

PITCH_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
SENTENCE_FALSE_ALARMS = 0.02
NOT_SAD = ("happy", "neutral", "calm")


def pitch_semitones(corpus: Corpus, rows: np.ndarray, cache: Path, progress: bool) -> np.ndarray:
    """Each clip's median pitch against its ``auto`` baseline, semitones (NaN when unmeasured); cached."""
    cfg = default_config()
    idx = np.flatnonzero(rows)
    key = hashlib.sha1("\n".join(corpus.rows[i]["path"] for i in idx).encode()).hexdigest()[:16]
    path = Path(cache) / f"pitch_semitones_{key}.npy"
    if path.is_file():
        return np.load(path)
    semitones = np.full(len(idx), np.nan)
    for j in track(range(len(idx)), "alerts: pitch", progress):
        measured = prosody(load_audio(corpus.rows[idx[j]]["path"]).samples)
        baseline = resolve_baseline("auto", cfg, pitch_hz=measured.pitch_hz)
        semitones[j] = measured.relative_to(baseline)["pitch_semitones"]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, semitones)
    return semitones


def balanced_accuracy(score: np.ndarray, is_sad: np.ndarray, groups: np.ndarray, threshold: float) -> float:
    """Mean over datasets of (recall on sad + specificity on the others) / 2: the UAR of sad vs not sad."""
    fired = score >= threshold
    return float(np.mean([uar(is_sad[groups == g], fired[groups == g], labels=(False, True))
                          for g in np.unique(groups)]))


def rates(score: np.ndarray, is_sad: np.ndarray, groups: np.ndarray, threshold: float) -> dict:
    return {"balanced_accuracy": balanced_accuracy(score, is_sad, groups, threshold),
            "recall": float((score[is_sad] >= threshold).mean()),
            "false_alarms": float((score[~is_sad] >= threshold).mean())}


def calibrate(data: Path, cache: Path, progress: bool = True, limit: int | None = None) -> dict:
    """The search over weight and thresholds; returns the chosen values, every weight's best figures and test's.

    ``data`` is the folder of the speech datasets; ``limit`` keeps N clips per speaker and label (quick runs).
    """
    cfg = default_config()
    cand = Candidate.read(EMBEDDED_ROOT / ARCHITECTURE)
    corpus = load_corpus(Path(data), Path(cache), cfg, progress, limit)
    rows = corpus.mask(split=("train", "dev"), label=("sad", *NOT_SAD))
    pool = corpus.mask(split=("train", "dev"))
    sad = model_labels(cfg).index("SAD")
    p_sad = out_of_fold(corpus, cand, pool)[rows, sad]
    pitch = pitch_semitones(corpus, rows, cache, progress)
    is_sad, groups = _truth(corpus, rows)
    table = []
    for w in PITCH_WEIGHTS:
        score = depressed_score(p_sad, pitch, w)
        best = max(np.unique(np.round(score, 3)), key=lambda t: balanced_accuracy(score, is_sad, groups, t))
        table.append({"pitch_weight": w, "diary_threshold": float(best), **rates(score, is_sad, groups, best)})
    chosen = max(table, key=lambda r: r["balanced_accuracy"])
    score = depressed_score(p_sad, pitch, chosen["pitch_weight"])
    not_sad = np.sort(score[~is_sad])
    sentence = float(np.round(not_sad[int(math.ceil(len(not_sad) * (1 - SENTENCE_FALSE_ALARMS))) - 1] + 1e-3, 3))
    test = corpus.mask(split="test", label=("sad", *NOT_SAD))
    test_score = depressed_score(fit(corpus, pool, cand).probs(corpus.x(cand.layers)[test].astype(np.float64))[:, sad],
                                 pitch_semitones(corpus, test, cache, progress), chosen["pitch_weight"])
    return {"clips": {"sad": int(is_sad.sum()), "not_sad": int((~is_sad).sum())}, "model": cand.name,
            "table": table, "depressed_pitch_weight": chosen["pitch_weight"],
            "depressed_score": chosen["diary_threshold"],
            "depressed_score_sentence": max(sentence, chosen["diary_threshold"]),
            "sentence_recall": float((score[is_sad] >= sentence).mean()),
            "test": rates(test_score, *_truth(corpus, test), chosen["diary_threshold"])}


def _truth(corpus: Corpus, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(is sad, dataset) of each selected clip."""
    idx = np.flatnonzero(rows)
    return (np.array([corpus.rows[i]["label"] == "sad" for i in idx]),
            np.array([corpus.rows[i]["dataset"] for i in idx]))


def print_result(result: dict) -> None:
    print(f"train+dev clips: {result['clips']['sad']} sad vs {result['clips']['not_sad']} happy/neutral/calm; "
          f"voice head {result['model']}, out-of-fold by speaker")
    print("pitch weight  diary threshold  balanced acc  recall  false alarms")
    for r in result["table"]:
        print(f"{r['pitch_weight']:12.2f}  {r['diary_threshold']:15.3f}  {r['balanced_accuracy']:12.3f}  "
              f"{r['recall']:6.3f}  {r['false_alarms']:12.3f}")
    print(f"[alerts] depressed_pitch_weight = {result['depressed_pitch_weight']:g}, depressed_score = "
          f"{result['depressed_score']:g}, depressed_score_sentence = {result['depressed_score_sentence']:g} "
          f"(sentence: {SENTENCE_FALSE_ALARMS:.0%} false alarms on train+dev clips, "
          f"recall {result['sentence_recall']:.3f})")
    test = result["test"]
    print(f"test speakers (reported, not used for any choice), diary threshold: balanced accuracy "
          f"{test['balanced_accuracy']:.3f}, recall {test['recall']:.3f}, false alarms {test['false_alarms']:.3f}")
