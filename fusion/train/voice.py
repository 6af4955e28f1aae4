"""Train the ``whisper-encoder-lr`` voice model: pooled Whisper-encoder layers → multinomial logistic head.

    fusion train audio --arch whisper-encoder-lr --out DIR [--data DIR] [--cache DIR]

Only audio whose words cannot give the emotion away is used: RAVDESS (two statements), EmoDB
(ten sentences) and the plain-to-emotional speakers of ko_emotional (neutral sentences read in
every emotion). Of the scripted (emotional-to-emotional) speakers only the neutral clips are
used — neutral words read neutrally, which teach NEUTRAL without tying an emotion to words.
neutral and RAVDESS calm are the NEUTRAL class; EmoDB's bored is left out.

Choices are made on a speaker-independent, lexically balanced dev protocol: RAVDESS dev actors,
EmoDB dev speakers and leave-one-speaker-out over the two Korean plain-to-emotional training
speakers. The chosen candidate is refitted on train+dev and reported on test (never chosen on).
Encoder features are computed once with the product's own code (``pooled_features``) and cached
as .npy, so a retrain takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fusion.audio import SAMPLE_RATE, Audio, audio_from_array, load_audio
from fusion.config import Config, default_config
from fusion.degrade import clip_seed, degrade
from fusion.errors import ModelError
from fusion.eval.conditions import babble_for
from fusion.eval.metrics import roc_auc, uar
from fusion.levels import voiced_spans
from fusion.model_files import EMBEDDED_SHA256
from fusion.progress import track
from fusion.train.audio_clips import read_rows as read_dataset
from fusion.voice.whisper import (
    ARCHITECTURE,
    TRAINED_WINDOW,
    WhisperHead,
    load_encoder,
    pooled_features,
    read_head,
    save,
)

ALL_LAYERS = (0, 1, 2, 3, 4, 5, 6)
DATASETS = ("ravdess", "emodb", "ko_emotional")
KO_DEV_SPEAKERS = ("ko_emotional:ema", "ko_emotional:emh")  # the plain-to-emotional train speakers (LOSO)
LABEL_MAP = {"angry": "ANGRY", "sad": "SAD", "disgust": "DISGUST", "happy": "HAPPY", "fear": "FEAR",
             "fearful": "FEAR", "surprised": "SURPRISE", "neutral": "NEUTRAL", "calm": "NEUTRAL"}


@dataclass(frozen=True)
class Candidate:
    """One setting of the recipe: encoder layers (mean-pooled, concatenated), inverse L2 strength, Korean weight,
    and the recording conditions (``fusion.degrade``) whose copies of the training clips are added to them."""

    layers: tuple[int, ...] = (2, 3)
    C: float = 0.1
    korean_weight: float = 10.0
    augment: tuple[str, ...] = ()

    @classmethod
    def read(cls, directory: Path) -> Candidate:
        """The candidate a model directory was trained with (its config.json ``recipe``)."""
        path = Path(directory) / "config.json"
        try:
            recipe = json.loads(path.read_text(encoding="utf-8"))["recipe"]
            return cls(tuple(recipe["layers"]), recipe["C"], recipe["korean_weight"], tuple(recipe.get("augment", ())))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: not the config of a {ARCHITECTURE} head ({exc})") from exc

    @property
    def name(self) -> str:
        augment = f", augmented {'+'.join(self.augment)}" if self.augment else ""
        return f"layers {'+'.join(map(str, self.layers))}, C {self.C:g}, Korean weight {self.korean_weight:g}{augment}"


CANDIDATES = (
    Candidate((1,)), Candidate((2,)), Candidate((3,)), Candidate((4,)), Candidate((6,)),
    Candidate((2, 3)), Candidate((2, 3), C=0.01), Candidate((2, 3), C=1.0), Candidate((2, 3), korean_weight=3.0),
    Candidate((3,), korean_weight=3.0),
)
DEFAULT = Candidate()


@dataclass
class Corpus:
    """Every usable clip with its label, speaker, split and pooled features of all encoder layers."""

    rows: list[dict]
    labels: np.ndarray     # index into the model's labels
    features: np.ndarray   # (clips, layers, state)
    degraded: dict[str, np.ndarray] = field(default_factory=dict)   # condition → features of the degraded clips

    def mask(self, **where) -> np.ndarray:
        out = np.ones(len(self.rows), bool)
        for key, value in where.items():
            values = value if isinstance(value, tuple) else (value,)
            out &= np.array([r[key] in values for r in self.rows])
        return out

    def x(self, layers: tuple[int, ...], condition: str = "clean") -> np.ndarray:
        features = self.features if condition == "clean" else self.degraded[condition]
        return features[:, list(layers)].reshape(len(self.rows), -1)


def model_labels(cfg: Config) -> list[str]:
    return [*cfg.labels.en, cfg.audio.neutral_label]


def read_rows(data: Path, limit: int | None = None) -> list[dict]:
    """The lexically balanced clips (and scripted speakers' neutral clips), each with ``model_label``.

    ``limit``: only the first N clips of each speaker and label (quick runs).
    """
    rows, seen = [], Counter()
    for r in (r for ds in DATASETS for r in read_dataset(Path(data).resolve(), ds)):
        label = LABEL_MAP.get(r["label"])
        scripted = r.get("subset") == "emotional-to-emotional"
        if label is None or (scripted and label != "NEUTRAL"):
            continue
        seen[(r["speaker"], label)] += 1
        if limit is not None and seen[(r["speaker"], label)] > limit:
            continue
        rows.append({**r, "model_label": label, "subset": r.get("subset") or "lexically balanced"})
    return rows


def load_corpus(data: Path, cache: Path, cfg: Config, progress: bool = True, limit: int | None = None,
                conditions: tuple[str, ...] = ()) -> Corpus:
    """Rows and their pooled features (all layers), computed with the product's code once and cached as .npy;
    also under each of ``conditions`` (``fusion.degrade``, seed 0 and the clip's path, as ``--degrade``)."""
    rows = read_rows(data, limit)
    labels = model_labels(cfg)
    return Corpus(rows, np.array([labels.index(r["model_label"]) for r in rows]),
                  clip_features(rows, cache, cfg, "clean", progress),
                  {c: clip_features(rows, cache, cfg, c, progress) for c in conditions})


def clip_features(rows: list[dict], cache: Path, cfg: Config, condition: str, progress: bool = True) -> np.ndarray:
    """(clips, layers, state): every clip's pooled encoder layers under ``condition``, cached per condition."""
    parts = [EMBEDDED_SHA256, str(TRAINED_WINDOW["max_piece_s"]), *(r["path"] for r in rows)]
    suffix = "" if condition == "clean" else "_" + condition.replace("+", "_")
    key = hashlib.sha1("\n".join(parts + ([condition] if suffix else [])).encode()).hexdigest()[:16]
    path = Path(cache) / f"whisper_layers_{key}{suffix}.npy"
    if path.is_file():
        return np.load(path)
    babble = babble_for([condition], cfg)
    encoder = load_encoder(max(ALL_LAYERS))
    features = np.zeros((len(rows), len(ALL_LAYERS), encoder.conv1.out_channels), np.float32)
    for i in track(range(len(rows)), f"voice: encoder features ({condition})", progress):
        audio = clip_audio(rows[i]["path"], condition, babble)
        speech = voiced_spans(audio, cfg.audio_input) or [(0.0, audio.duration)]
        pooled = pooled_features(audio.samples, [(0.0, audio.duration)], speech, encoder, ALL_LAYERS,
                                 TRAINED_WINDOW["max_piece_s"])
        features[i] = pooled[0].reshape(len(ALL_LAYERS), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, features)
    return features


def clip_audio(path: str, condition: str, babble: list[np.ndarray] | None) -> Audio:
    """A training clip under ``condition`` (``fusion.degrade``, seed 0 and the clip's path, as ``--degrade``)."""
    audio = load_audio(path)
    if condition == "clean":
        return audio
    return audio_from_array(degrade(audio.samples, condition, clip_seed(0, path), babble), SAMPLE_RATE, audio.source)


def fit(corpus: Corpus, train: np.ndarray, cand: Candidate) -> WhisperHead:
    """Standardise, then class-balanced multinomial logistic regression (Korean clips weighted up)."""
    from sklearn.linear_model import LogisticRegression

    copies = 1 + len(cand.augment)
    x = np.vstack([corpus.x(cand.layers, c)[train] for c in ("clean", *cand.augment)]).astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    weight = np.tile(np.where(corpus.mask(dataset="ko_emotional")[train], cand.korean_weight, 1.0), copies)
    clf = LogisticRegression(C=cand.C, max_iter=3000, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit((x - mean) / scale, np.tile(corpus.labels[train], copies), sample_weight=weight)
    n_labels = corpus.labels.max() + 1
    w, b = np.zeros((n_labels, x.shape[1])), np.full(n_labels, -30.0)  # a class absent from training is never predicted
    w[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
    return WhisperHead(mean, scale, w, b)


def scores(corpus: Corpus, head: WhisperHead, cand: Candidate, rows: np.ndarray, sad: int,
           condition: str = "clean") -> dict:
    """UAR over the emotions present (argmax among the six emotions) and the SAD-vs-rest AUC of P(SAD)."""
    p = head.probs(corpus.x(cand.layers, condition)[rows].astype(np.float64))
    y = corpus.labels[rows]
    emotional = y < p.shape[1] - 1
    truth = y[emotional]
    out = {"uar": uar(truth, p[emotional, :-1].argmax(1)), "n": int(rows.sum())}
    auc = roc_auc(list(y == sad), list(p[:, sad]))
    if auc is not None:
        out["sad_auc"] = auc
    return out


def dev_figures(corpus: Corpus, cand: Candidate, sad: int) -> dict:
    """Speaker-independent, lexically balanced dev: RAVDESS and EmoDB dev speakers, Korean leave-one-speaker-out;
    on the clean clips and under each of the corpus's degraded conditions (their figures prefixed by its name)."""
    train = corpus.mask(split="train")
    head = fit(corpus, train, cand)
    loso = {speaker: fit(corpus, train & ~corpus.mask(speaker=speaker), cand) for speaker in KO_DEV_SPEAKERS}
    out = {}
    for condition in ("clean", *corpus.degraded):
        prefix = "" if condition == "clean" else f"{condition} "
        for ds in ("ravdess", "emodb"):
            rows = corpus.mask(dataset=ds, split="dev")
            out[f"{prefix}{ds} dev uar"] = scores(corpus, head, cand, rows, sad, condition)["uar"]
        for speaker, held_out in loso.items():
            s = scores(corpus, held_out, cand, corpus.mask(speaker=speaker), sad, condition)
            name = prefix + speaker.split(":")[1]
            out[f"{name} uar"], out[f"{name} sad_auc"] = s["uar"], s["sad_auc"]
    clean = [v for k, v in out.items() if not any(k.startswith(f"{c} ") for c in corpus.degraded)]
    out["clean score"], out["score"] = float(np.mean(clean)), float(np.mean(list(out.values())))
    return out


def choose(table: list[tuple[Candidate, dict]]) -> tuple[Candidate, dict]:
    """The candidate of the best dev score over every condition; one trained on degraded copies only where its
    clean dev figures are no worse than the best plain candidate's (a head for phones must not cost clean audio);
    with no plain candidate in the table (a given recipe retrained), the best dev score."""
    plain = max((t[1] for t in table if not t[0].augment), key=lambda d: d["score"], default={"clean score": -np.inf})
    return max((t for t in table if not t[0].augment or t[1]["clean score"] >= plain["clean score"]),
               key=lambda t: t[1]["score"])


def test_figures(corpus: Corpus, head: WhisperHead, cand: Candidate, sad: int) -> dict:
    """Reported, never chosen on: the test speakers of each dataset (Korean: the plain-to-emotional speaker)."""
    out = {}
    for condition in ("clean", *corpus.degraded):
        prefix = "" if condition == "clean" else f"{condition} "
        for ds in DATASETS:
            rows = corpus.mask(dataset=ds, split="test", subset="lexically balanced" if ds != "ko_emotional"
                               else "plain-to-emotional")
            for metric, value in scores(corpus, head, cand, rows, sad, condition).items():
                if metric != "n" and (ds == "ko_emotional" or metric == "uar"):
                    out[f"{prefix}{ds} test {metric}"] = value
    return out


def out_of_fold(corpus: Corpus, cand: Candidate, rows: np.ndarray, folds: int = 5,
                conditions: tuple[str, ...] = ("clean",)) -> dict[str, np.ndarray]:
    """Probabilities of ``rows`` under each condition (the corpus's features of it) from heads that never saw the
    clip's speaker (speaker-grouped folds)."""
    speakers = sorted({corpus.rows[i]["speaker"] for i in np.flatnonzero(rows)})
    probs = {c: np.zeros((len(corpus.rows), corpus.labels.max() + 1)) for c in conditions}
    for k in range(folds):
        held = corpus.mask(speaker=tuple(speakers[k::folds])) & rows
        head = fit(corpus, rows & ~held, cand)
        for c in conditions:
            probs[c][held] = head.probs(corpus.x(cand.layers, c)[held].astype(np.float64))
    return probs


def train(out: Path, data: Path, cache: Path, progress: bool = True, candidates=CANDIDATES, command: str = "",
          limit: int | None = None, augment: tuple[str, ...] = ()) -> dict:
    """Measure the candidates on dev, refit the best on train+dev, write the model directory; returns the figures.

    ``augment``: recording conditions whose degraded copies of every clip are encoded too; the dev figures then
    hold each condition's as well, and the layers 2+3 candidates are also tried with those copies added to training.
    """
    cfg = default_config()
    t0 = time.time()
    corpus = load_corpus(Path(data), Path(cache), cfg, progress, limit, augment)
    if augment:
        candidates = [*candidates, *(replace(c, augment=augment) for c in candidates
                                     if c.layers == (2, 3) and not c.augment)]
    sad = model_labels(cfg).index("SAD")
    table = [(cand, dev_figures(corpus, cand, sad)) for cand in track(list(candidates), "voice: candidates", progress)]
    best, dev = choose(table)
    train_dev = corpus.mask(split=("train", "dev"))
    head = fit(corpus, train_dev, best)
    test = test_figures(corpus, head, best, sad)
    counts = {lab: int(np.sum(corpus.labels[train_dev] == i)) for i, lab in enumerate(model_labels(cfg))}
    save(Path(out), head, {
        "labels": model_labels(cfg), "layers": list(best.layers), "pool": "mean", "encoder": "embedded Whisper base "
        f"(sha256 {EMBEDDED_SHA256[:16]}…)", "recipe": asdict(best), "train_clips_per_label": counts,
        "data": "shared/data/speech: ravdess, emodb, ko_emotional "
                "(plain-to-emotional; scripted speakers' neutral clips)",
        "split": "candidates chosen on dev (RAVDESS/EmoDB dev speakers, Korean leave-one-speaker-out on ema/emh); "
                 "final head fitted on train+dev; test reported only",
        "candidates": [{"candidate": c.name, **{k: round(v, 4) for k, v in d.items()}} for c, d in table],
        "metrics": {"dev": dev, "test": test}, "limit_per_speaker_label": limit, "command": command,
        "train_seconds": round(time.time() - t0)})
    return {"candidates": table, "chosen": best, "dev": dev, "test": test}


def evaluate_only(model_dir: Path, data: Path, cache: Path, progress: bool = True, limit: int | None = None) -> dict:
    """Test figures of the head in ``model_dir`` (trains nothing)."""
    cfg = default_config()
    cand, head = Candidate.read(model_dir), read_head(Path(model_dir))
    corpus = load_corpus(Path(data), Path(cache), cfg, progress, limit)
    return {"test": test_figures(corpus, head, cand, model_labels(cfg).index("SAD"))}


def print_figures(result: dict) -> None:
    for cand, figures in result.get("candidates", []):
        mark = "*" if cand == result["chosen"] else " "
        print(f"{mark} {cand.name:45s} " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    print("test (reported, not used for any choice): " + "  ".join(f"{k} {v:.3f}" for k, v in result["test"].items()))
