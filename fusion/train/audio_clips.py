"""The speech datasets as training clips: rows of ``labels.csv``, MFCC features (cached), neutral baselines.

Each clip keeps the MFCC sequence of the whole file and its voiced spans (as inference sees it);
training clips also keep augmented copies: the silence-trimmed clip and copies with a random
tempo change and pitch shift. Audio is decoded with ``fusion.audio``, as the product decodes it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import librosa
import numpy as np

from fusion.audio import SAMPLE_RATE, load_audio
from fusion.config import Config
from fusion.eval.text import read_rows as read_csv
from fusion.files import atomic_writer
from fusion.levels import voiced_spans
from fusion.voice.mfcc import mfcc, pad_or_cut, span_frames
from fusion.voice.prosody import NeutralBaseline

DATASETS = ("ravdess", "emodb", "ko_emotional")
LABEL_MAP = {"angry": "ANGRY", "sad": "SAD", "disgust": "DISGUST", "happy": "HAPPY",
             "fear": "FEAR", "fearful": "FEAR", "surprised": "SURPRISE"}
NEUTRAL = {"ravdess": ("neutral", "calm"), "emodb": ("neutral",), "ko_emotional": ("neutral",)}


@dataclass(frozen=True)
class Augment:
    """Per training clip: ``copies`` copies time-stretched by 1 ± ``tempo`` and pitch-shifted by ± ``semitones``."""

    copies: int
    tempo: float
    semitones: float


@dataclass
class Clip:
    dataset: str
    speaker: str
    gender: str
    split: str
    label: str            # raw dataset label
    feats: np.ndarray     # full MFCC sequence (frames, 13) of the untrimmed clip
    spans: list           # voiced frame spans, as CnnVoice.diary_probs uses them
    aug: list = field(default_factory=list)  # trimmed, augmented MFCC sequences (train only)


def read_rows(data: Path, ds: str) -> list[dict]:
    """One dataset's ``labels.csv`` rows: absolute paths, speakers prefixed by the dataset."""
    path = Path(data) / ds / "labels.csv"
    return [{**r, "dataset": ds, "path": str(path.parent / r["path"]), "speaker": f"{ds}:{r['speaker']}"}
            for r in read_csv(path, ("path", "label", "speaker", "gender", "split"))]


def _features(args: tuple[str, bool, int, Augment]) -> tuple[np.ndarray, list, list]:
    path, augment, seed, aug = args
    audio = load_audio(path)
    y = audio.samples
    feats = mfcc(y)
    spans = [span_frames(s, len(feats)) for s in voiced_spans(audio)] or [(0, len(feats))]
    copies = []
    if augment:
        rng = np.random.default_rng(seed)
        trimmed, _ = librosa.effects.trim(y, top_db=35)
        copies.append(mfcc(trimmed))
        for _ in range(aug.copies):
            z = librosa.effects.time_stretch(trimmed, rate=rng.uniform(1 - aug.tempo, 1 + aug.tempo))
            z = librosa.effects.pitch_shift(z, sr=SAMPLE_RATE, n_steps=rng.uniform(-aug.semitones, aug.semitones))
            copies.append(mfcc(z))
    return feats, spans, copies


def limit_rows(rows: list[dict], per_class: int | None) -> list[dict]:
    """The first ``per_class`` emotional clips per (dataset, split, label), plus two neutral clips of each
    speaker kept (for their personal baseline); speakers without two neutral clips are dropped."""
    if per_class is None:
        return rows
    seen: dict = defaultdict(int)
    keep = []
    for r in rows:
        if r["label"] in LABEL_MAP:
            seen[(r["dataset"], r["split"], r["label"])] += 1
            if seen[(r["dataset"], r["split"], r["label"])] <= per_class:
                keep.append(r)
    speakers = {r["speaker"] for r in keep}
    neutral = defaultdict(list)
    for r in rows:
        if r["speaker"] in speakers and r["label"] in NEUTRAL[r["dataset"]] and len(neutral[r["speaker"]]) < 2:
            neutral[r["speaker"]].append(r)
    ok = {s for s, n in neutral.items() if len(n) == 2}
    chosen = {id(r) for r in keep if r["speaker"] in ok} | {id(r) for s in ok for r in neutral[s]}
    return [r for r in rows if id(r) in chosen]


def load_clips(data: Path, cache: Path, augment: Augment, limit_per_class: int | None = None) -> list[Clip]:
    """Every clip of the three datasets (or a per-class subset) with its features, computed once and cached."""
    rows = limit_rows([r for ds in DATASETS for r in read_rows(data, ds)], limit_per_class)
    digest = hashlib.sha1("\n".join(r["path"] for r in rows).encode()).hexdigest()[:12]
    key = Path(cache) / f"speech_feats_aug{augment.copies}_t{augment.tempo:g}_st{augment.semitones:g}_{digest}.npz"
    if key.is_file():
        stored = np.load(key, allow_pickle=True)["items"]
    else:
        todo = [(r["path"], r["split"] == "train" and r["label"] in LABEL_MAP, i, augment) for i, r in enumerate(rows)]
        with Pool(2) as pool:
            stored = pool.map(_features, todo, chunksize=8)
        key.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(key) as fh:
            np.savez(fh, items=np.array(stored, dtype=object))
    return [Clip(r["dataset"], r["speaker"], r["gender"], r["split"], r["label"], f, s, a)
            for r, (f, s, a) in zip(rows, stored)]


def speaker_baselines(clips: list[Clip], cfg: Config) -> dict[str, NeutralBaseline]:
    """Per-speaker baseline from that speaker's neutral clips (the original's per-file mean, then mean/std)."""
    means = defaultdict(list)
    for c in clips:
        if c.label in NEUTRAL[c.dataset]:
            means[c.speaker].append(pad_or_cut(c.feats, cfg.audio.frames).mean(axis=0))
    return {s: NeutralBaseline(np.mean(m, 0), np.std(m, 0), s) for s, m in means.items() if len(m) >= 2}


def gender_baselines(cfg: Config) -> dict[str, NeutralBaseline]:
    return {g: NeutralBaseline.from_config(g, cfg.audio) for g in ("male", "female")}

