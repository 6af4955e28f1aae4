"""Choose the depressed-voice rule of ``[alerts]`` by measurement: ``fusion train alerts``.

The rule (``fusion.combine.depressed_score``, the one formula scored here too): P(SAD) of the
voice, its neutral share taken out, plus ``depressed_pitch_weight`` per semitone of pitch below
the neutral baseline, at or above ``depressed_score`` for the whole diary and ``depressed_score_sentence`` for one
sentence. Measured on the train and dev speakers only (lexically balanced clips, and the
scripted speakers' neutral clips): sad voices against happy, neutral, calm and angry ones, each
clip scored by a voice head that never heard its speaker (speaker-grouped folds) and its
pitch taken against the ``auto`` baseline, as a new user's diary is; every clip as recorded and
under each recording condition of ``CONDITIONS`` (``fusion.degrade``: a phone's noise, room and codec), and as
recorded with pitch against a personal baseline (the speaker's other neutral and calm clips), as the diary of a
user with one is (condition ``personal``). For the rule as configured, the noise margin (``noise_thresholds``):
how much both thresholds rise as a recording's estimated SNR falls.
The weight and the diary threshold maximise the worst-emotion balanced accuracy, (recall on sad
+ the lowest specificity over the other emotions) / 2, averaged over each dataset under each
condition, so no one emotion (an angry voice) nor one condition (noise) may carry the false
alarms; the sentence threshold is the lowest that keeps the false alarms on non-sad clips at
``SENTENCE_FALSE_ALARMS`` (a sentence is short, noisy evidence, and a diary holds many).

The two gap rules read where the voice sits (``fusion.combine.voice_point``, from the same out-of-fold scores):
``agitated_voice_arousal`` and the upbeat pair (``upbeat_voice_valence``, ``upbeat_voice_arousal``) are the lowest
that let at most ``GAP_FALSE_ALARMS`` of the neutral and calm voices through under every condition (calm speech
raises no alert), the upbeat pair the one of those that lets most happy voices through; recall on angry (agitated)
and happy (upbeat) voices is reported per condition.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.combine import depressed_score, snr_ramp, voice_point
from fusion.config import default_config
from fusion.eval.conditions import babble_for
from fusion.progress import track
from fusion.quality import assess
from fusion.train.voice import Candidate, Corpus, clip_audio, fit, load_corpus, model_labels, out_of_fold
from fusion.voice.model import EMBEDDED_ROOT, split_neutral
from fusion.voice.prosody import prosody, resolve_baseline
from fusion.voice.whisper import ARCHITECTURE

PITCH_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
SENTENCE_FALSE_ALARMS = 0.02
NOT_SAD = ("happy", "neutral", "calm", "angry")
CONDITIONS = ("clean", "pink15", "near", "opus16")
GAP_FALSE_ALARMS = 0.02
CALM = ("neutral", "calm")
GRID = np.round(np.arange(-1.0, 1.0001, 0.01), 2)  # the voice thresholds the gap rules are chosen from
NOISE_STARTS = (30.0, 35.0, 40.0, 45.0, 50.0, 60.0)      # depressed_clean_snr_db candidates, dB
NOISE_MARGINS = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # depressed_noise_margin candidates


def per_clip(corpus: Corpus, rows: np.ndarray, cache: Path, progress: bool, condition: str, name: str,
             measure: Callable[[np.ndarray], float]) -> np.ndarray:
    """``measure(samples)`` of each of ``rows``' clips under ``condition``; cached as ``{name}_<key>.npy``."""
    idx = np.flatnonzero(rows)
    parts = [corpus.rows[i]["path"] for i in idx] + ([condition] if condition != "clean" else [])
    key = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]
    path = Path(cache) / f"{name}_{key}.npy"
    if path.is_file():
        return np.load(path)
    babble = babble_for([condition], default_config())
    values = np.array([measure(clip_audio(corpus.rows[i]["path"], condition, babble).samples)
                       for i in track(idx, f"alerts: {name} ({condition})", progress)], dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def pitch_semitones(corpus: Corpus, rows: np.ndarray, cache: Path, progress: bool,
                    condition: str = "clean") -> np.ndarray:
    """Each clip's median pitch under ``condition`` against its ``auto`` baseline, semitones (NaN when
    unmeasured); cached."""
    cfg = default_config()

    def semitones(samples: np.ndarray) -> float:
        measured = prosody(samples)
        return measured.relative_to(resolve_baseline("auto", cfg, pitch_hz=measured.pitch_hz))["pitch_semitones"]

    return per_clip(corpus, rows, cache, progress, condition, "pitch_semitones", semitones)


def personal_semitones(corpus: Corpus, rows: np.ndarray, cache: Path, progress: bool) -> np.ndarray:
    """Each clip's median pitch as recorded against a personal baseline: the median pitch of the same speaker's
    other neutral and calm clips among ``rows`` (as ``fusion baseline`` builds one); NaN where fewer than two."""
    hz = per_clip(corpus, rows, cache, progress, "clean", "pitch_hz", lambda samples: prosody(samples).pitch_hz)
    idx = np.flatnonzero(rows)
    speaker = np.array([corpus.rows[i]["speaker"] for i in idx])
    calm = np.isin([corpus.rows[i]["label"] for i in idx], CALM) & np.isfinite(hz)
    out = np.full(len(idx), np.nan)
    for j in range(len(idx)):
        others = hz[calm & (speaker == speaker[j]) & (np.arange(len(idx)) != j)]
        if len(others) >= 2 and np.isfinite(hz[j]):
            out[j] = 12.0 * np.log2(hz[j] / np.median(others))
    return out


@dataclass(frozen=True)
class Clips:
    """The scored clips, one entry per clip and condition: truth label, the group (dataset, condition), and the
    recording's estimated SNR (``fusion.quality``)."""

    label: np.ndarray
    group: np.ndarray
    snr_db: np.ndarray

    @property
    def is_sad(self) -> np.ndarray:
        return self.label == "sad"


def worst_case_accuracy(score: np.ndarray, clips: Clips, threshold: float) -> float:
    """Mean over (dataset, condition) groups of (recall on sad + the lowest specificity over the other emotions) / 2."""
    fired = score >= threshold
    out = []
    for g in np.unique(clips.group):
        in_g = clips.group == g
        others = [lab for lab in np.unique(clips.label[in_g]) if lab != "sad"]
        specificity = min(1.0 - fired[in_g & (clips.label == lab)].mean() for lab in others)
        out.append((fired[in_g & clips.is_sad].mean() + specificity) / 2)
    return float(np.mean(out))


def rates(score: np.ndarray, clips: Clips, threshold: float) -> dict:
    """The objective, recall on sad and the false alarms on each other emotion, at ``threshold``."""
    fired = score >= threshold
    return {"worst_case_accuracy": worst_case_accuracy(score, clips, threshold),
            "recall": float(fired[clips.is_sad].mean()),
            "false_alarms": {lab: float(fired[clips.label == lab].mean()) for lab in NOT_SAD
                             if (clips.label == lab).any()}}


def scored(corpus: Corpus, rows: np.ndarray, probs: dict[str, np.ndarray], cache: Path, progress: bool,
           ) -> tuple[np.ndarray, np.ndarray, Clips]:
    """(P(SAD), pitch in semitones, clips) of ``rows`` under every condition of ``probs`` with pitch against the
    ``auto`` baseline, one after the other, then (with "clean" among them) as recorded against a personal baseline,
    as condition ``personal``: the two ways a diary's pitch is read (a new user's, and once they have a baseline)."""
    sad = model_labels(default_config()).index("SAD")
    idx = np.flatnonzero(rows)
    label = np.array([corpus.rows[i]["label"] for i in idx])
    dataset = np.array([corpus.rows[i]["dataset"] for i in idx])
    conditions = list(probs)
    p_sad = [probs[c][rows, sad] for c in conditions]
    pitch = [pitch_semitones(corpus, rows, cache, progress, c) for c in conditions]
    quality = default_config().quality
    snr = [per_clip(corpus, rows, cache, progress, c, "snr_db", lambda s: assess(s, quality).snr_db)
           for c in conditions]
    group = [dataset + " " + c for c in conditions]
    if "clean" in probs:
        p_sad.append(probs["clean"][rows, sad])
        pitch.append(personal_semitones(corpus, rows, cache, progress))
        snr.append(snr[conditions.index("clean")])
        group.append(dataset + " personal")
    return (np.concatenate(p_sad), np.concatenate(pitch),
            Clips(np.tile(label, len(group)), np.concatenate(group), np.concatenate(snr)))


def per_condition(score: np.ndarray, clips: Clips, threshold: float) -> dict:
    """``rates`` of each condition apart."""
    conditions = dict.fromkeys(g.split(" ", 1)[1] for g in clips.group)
    out = {}
    for c in conditions:
        keep = np.char.endswith(clips.group.astype(str), " " + c)
        out[c] = rates(score[keep], Clips(clips.label[keep], clips.group[keep], clips.snr_db[keep]), threshold)
    return out


def _condition(clips: Clips) -> np.ndarray:
    return np.array([g.split(" ", 1)[1] for g in clips.group])


def _worst_specificity(fired: np.ndarray, clips: Clips, keep: np.ndarray) -> float:
    return min(1.0 - fired[keep & (clips.label == lab)].mean() for lab in NOT_SAD
               if (keep & (clips.label == lab)).any())


def noise_thresholds(score: np.ndarray, clips: Clips, threshold: float) -> dict:
    """``depressed_noise_margin`` and ``depressed_clean_snr_db`` for the diary ``threshold``: for each start, the
    lowest margin at which no phone condition's worst specificity (over the not-sad emotions) falls below the clips'
    as recorded; of those, the pair with the most recall on sad voices averaged over the conditions (``met``; where
    no margin of the grid gets there, the pair whose worst phone condition comes closest). Clips below
    ``[quality] min_snr_db`` raise nothing (the pipeline stands down there)."""
    cfg = default_config()
    condition, heard = _condition(clips), clips.snr_db >= cfg.quality.min_snr_db
    conditions = list(dict.fromkeys(condition))
    degraded = [c for c in conditions if c not in ("clean", "personal")]
    clean = _worst_specificity((score >= threshold) & heard, clips, condition == "clean")
    found = []  # (met, recall or worst specificity, -margin, start, fired)
    for start in NOISE_STARTS:
        ramp = snr_ramp(clips.snr_db, start, cfg.quality.min_snr_db)
        for margin in NOISE_MARGINS:
            fired = (score >= threshold + margin * ramp) & heard
            worst = min((_worst_specificity(fired, clips, condition == c) for c in degraded), default=clean)
            recall = float(np.mean([fired[(condition == c) & clips.is_sad].mean() for c in conditions]))
            found.append((worst >= clean, recall if worst >= clean else worst, -float(margin), start, fired))
            if worst >= clean:
                break
    met, _, margin, start, fired = max(found, key=lambda f: f[:4])
    return {"depressed_noise_margin": -margin, "depressed_clean_snr_db": start, "met": bool(met),
            "conditions": {c: {"recall": float(fired[(condition == c) & clips.is_sad].mean()),
                               "false_alarms": {lab: float(fired[(condition == c) & (clips.label == lab)].mean())
                                                for lab in NOT_SAD if ((condition == c) & (clips.label == lab)).any()}}
                           for c in conditions}}


def confusion(corpus: Corpus, rows: np.ndarray, probs: dict[str, np.ndarray]) -> dict:
    """Per condition, the share of angry clips whose strongest emotion is SAD, and of sad clips read ANGRY."""
    labels = model_labels(default_config())
    out = {}
    for c, p in probs.items():
        top = np.array(labels)[p[:, :-1].argmax(axis=1)]
        angry, sad = rows & corpus.mask(label="angry"), rows & corpus.mask(label="sad")
        out[c] = {"angry_as_sad": float((top[angry] == "SAD").mean()),
                  "sad_as_angry": float((top[sad] == "ANGRY").mean())}
    return out


def voice_points(corpus: Corpus, rows: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per condition, (valence, arousal) of each of ``rows``' voices as the pipeline places them, shape (n, 2)."""
    cfg = default_config()
    labels = model_labels(cfg)
    order, neutral = [labels.index(lab) for lab in cfg.labels.en], labels.index(cfg.audio.neutral_label)
    out = {}
    for c, p in probs.items():
        e, n = split_neutral(p[rows], order, neutral)
        points = [voice_point(e[i], float(n[i]), cfg) for i in range(len(e))]
        out[c] = np.array([(va.valence, va.arousal) for va in points])
    return out


def gap_thresholds(points: dict[str, np.ndarray], label: np.ndarray) -> dict:
    """The voice thresholds of the two gap rules (see the module's docstring), with recall and calm false alarms
    per condition."""
    calm, angry, happy = np.isin(label, CALM), label == "angry", label == "happy"
    if not calm.any():
        raise ValueError("no neutral or calm clips to choose the gap rules' voice thresholds on")

    def lowest(passes) -> float:  # the lowest grid value whose calm false alarms stay within bounds everywhere
        return float(next(t for t in GRID if all(passes(va, t)[calm].mean() <= GAP_FALSE_ALARMS
                                                 for va in points.values())))

    arousal = lowest(lambda va, t: va[:, 1] >= t)
    upbeat = []
    for a in np.round(np.arange(0.0, 0.61, 0.1), 1):
        v = lowest(lambda va, t, a=a: (va[:, 0] >= t) & (va[:, 1] >= a))
        fired = {c: (va[:, 0] >= v) & (va[:, 1] >= a) for c, va in points.items()}
        upbeat.append((float(np.mean([f[happy].mean() for f in fired.values()])), v, float(a)))
    _, valence, up_arousal = max(upbeat)
    return {"agitated_voice_arousal": arousal, "upbeat_voice_valence": valence, "upbeat_voice_arousal": up_arousal,
            "conditions": {c: {"agitated_recall_angry": float((va[angry, 1] >= arousal).mean()),
                               "agitated_calm": float((va[calm, 1] >= arousal).mean()),
                               "upbeat_recall_happy": float(((va[happy, 0] >= valence)
                                                             & (va[happy, 1] >= up_arousal)).mean()),
                               "upbeat_calm": float(((va[calm, 0] >= valence) & (va[calm, 1] >= up_arousal)).mean())}
                           for c, va in points.items()}}


def calibrate(data: Path, cache: Path, progress: bool = True, limit: int | None = None,
              model: Path | None = None, conditions: tuple[str, ...] = CONDITIONS) -> dict:
    """The search over weight and thresholds; returns the chosen values, every weight's best figures and test's.

    ``data`` is the folder of the speech datasets; ``limit`` keeps N clips per speaker and label (quick runs);
    ``model`` is the voice head whose recipe is scored (default: the embedded one); ``conditions`` are
    ``fusion.degrade`` names, "clean" among them or not.
    """
    cfg = default_config()
    cand = Candidate.read(Path(model) if model is not None else EMBEDDED_ROOT / ARCHITECTURE)
    degraded = tuple(dict.fromkeys(c for c in (*conditions, *cand.augment) if c != "clean"))  # scored, trained on
    corpus = load_corpus(Path(data), Path(cache), cfg, progress, limit, degraded)
    rows = corpus.mask(split=("train", "dev"), label=("sad", *NOT_SAD))
    pool = corpus.mask(split=("train", "dev"))
    probs = out_of_fold(corpus, cand, pool, conditions=conditions)
    p_sad, pitch, clips = scored(corpus, rows, probs, cache, progress)
    table = []
    for w in PITCH_WEIGHTS:
        score = depressed_score(p_sad, pitch, w)
        best = max(np.unique(np.round(score, 3)), key=lambda t: worst_case_accuracy(score, clips, t))
        table.append({"pitch_weight": w, "diary_threshold": float(best), **rates(score, clips, best)})
    chosen = max(table, key=lambda r: r["worst_case_accuracy"])
    score = depressed_score(p_sad, pitch, chosen["pitch_weight"])
    not_sad = np.sort(score[~clips.is_sad])
    sentence = float(np.round(not_sad[int(math.ceil(len(not_sad) * (1 - SENTENCE_FALSE_ALARMS))) - 1] + 1e-3, 3))
    labels = np.array([corpus.rows[i]["label"] for i in np.flatnonzero(rows)])
    gaps = gap_thresholds(voice_points(corpus, rows, probs), labels)
    a = cfg.alerts  # the noise margin is chosen for the rule as configured
    noise = noise_thresholds(depressed_score(p_sad, pitch, a.depressed_pitch_weight), clips, a.depressed_score)
    test = corpus.mask(split="test", label=("sad", *NOT_SAD))
    head = fit(corpus, pool, cand)
    test_probs = {c: head.probs(corpus.x(cand.layers, c).astype(np.float64)) for c in conditions}
    t_sad, t_pitch, t_clips = scored(corpus, test, test_probs, cache, progress)
    t_score = depressed_score(t_sad, t_pitch, chosen["pitch_weight"])
    return {"clips": {"sad": int(clips.is_sad.sum()), "not_sad": int((~clips.is_sad).sum())}, "model": cand.name,
            "conditions": list(conditions), "table": table, "depressed_pitch_weight": chosen["pitch_weight"],
            "depressed_score": chosen["diary_threshold"],
            "depressed_score_sentence": max(sentence, chosen["diary_threshold"]),
            "sentence_recall": float((score[clips.is_sad] >= sentence).mean()),
            "conditions_dev": per_condition(score, clips, chosen["diary_threshold"]),
            "confusion_dev": confusion(corpus, rows, probs),
            "test": per_condition(t_score, t_clips, chosen["diary_threshold"]), "gaps": gaps, "noise": noise}


def _line(name: str, r: dict) -> str:
    alarms = "  ".join(f"{lab} {v:.3f}" for lab, v in r["false_alarms"].items())
    return f"{name:>14s}  {r['worst_case_accuracy']:.3f}  recall {r['recall']:.3f}  false alarms {alarms}"


def print_result(result: dict) -> None:
    print(f"train+dev clips: {result['clips']['sad']} sad vs {result['clips']['not_sad']} {'/'.join(NOT_SAD)}, "
          f"each under {', '.join(result['conditions'])}; voice head {result['model']}, out-of-fold by speaker")
    print("pitch weight, diary threshold: worst-emotion balanced accuracy, recall, false alarms per emotion")
    for r in result["table"]:
        print(_line(f"{r['pitch_weight']:.2f}, {r['diary_threshold']:.3f}", r))
    print(f"[alerts] depressed_pitch_weight = {result['depressed_pitch_weight']:g}, depressed_score = "
          f"{result['depressed_score']:g}, depressed_score_sentence = {result['depressed_score_sentence']:g} "
          f"(sentence: {SENTENCE_FALSE_ALARMS:.0%} false alarms on train+dev clips, "
          f"recall {result['sentence_recall']:.3f})")
    print("train+dev, out-of-fold, diary threshold, each condition:")
    for condition, r in result["conditions_dev"].items():
        print(_line(condition, r))
    print("train+dev, out-of-fold, strongest emotion: " + "  ".join(
        f"{c} angry→SAD {r['angry_as_sad']:.3f} SAD→angry {r['sad_as_angry']:.3f}"
        for c, r in result["confusion_dev"].items()))
    print("test speakers (reported, not used for any choice), diary threshold:")
    for condition, r in result["test"].items():
        print(_line(condition, r))
    noise = result["noise"]
    print(f"[alerts] depressed_noise_margin = {noise['depressed_noise_margin']:g}, depressed_clean_snr_db = "
          f"{noise['depressed_clean_snr_db']:g} (for the configured weight and diary threshold: no phone condition's "
          f"worst false alarms above as recorded{'' if noise['met'] else ': not met, the closest'}); train+dev, "
          "out-of-fold:")
    for condition, r in noise["conditions"].items():
        alarms = "  ".join(f"{lab} {v:.3f}" for lab, v in r["false_alarms"].items())
        print(f"{condition:>14s}  recall {r['recall']:.3f}  false alarms {alarms}")
    gaps = result["gaps"]
    print(f"[alerts] agitated_voice_arousal = {gaps['agitated_voice_arousal']:g}, upbeat_voice_valence = "
          f"{gaps['upbeat_voice_valence']:g}, upbeat_voice_arousal = {gaps['upbeat_voice_arousal']:g} (at most "
          f"{GAP_FALSE_ALARMS:.0%} of neutral and calm voices past them under every condition); "
          "train+dev, out-of-fold:")
    for condition, r in gaps["conditions"].items():
        print(f"{condition:>14s}  agitated: angry {r['agitated_recall_angry']:.3f} calm {r['agitated_calm']:.3f}  "
              f"upbeat: happy {r['upbeat_recall_happy']:.3f} calm {r['upbeat_calm']:.3f}")
