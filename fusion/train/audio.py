"""Train the CNN-BiLSTM voice emotion model on shared/data/speech and report dev/test figures.

    fusion train audio --out DIR [--seed N] [--epochs N] [--limit-per-class N] [--cache DIR]
    python -m fusion.train.audio [--out DIR] [--seed N] [--data DIR] [recipe flags] [--eval-only]

Train split of ravdess, emodb and ko_emotional (speaker-independent splits from labels.csv);
early stopping on dev; figures on test are printed, never used for a choice. Each training
window is normalised either by the speaker's own neutral baseline (built with
``build_baseline`` from their neutral clips, as a user's personal baseline) or by the
male/female baseline of the config, so both work at inference. Augmentation: copies of each
clip with a random tempo change and pitch shift (cached), random 100-frame crops, and a
random level change (an offset of MFCC 0). The recipe's tunables are the ``Recipe`` fields (one CLI
flag each), recorded in the model's config.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import Pool
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from sklearn.metrics import recall_score, roc_auc_score
from torch import nn
from torch.optim.swa_utils import update_bn

import fusion
from fusion.audio import SAMPLE_RATE, audio_from_array, voiced_spans
from fusion.audio_branch import EMBEDDED_ROOT, load_audio_model_from
from fusion.config import Config, default_config
from fusion.errors import InputError
from fusion.evaluate import sad_vs_rest_auc
from fusion.mfcc import mfcc, pad_or_cut, span_frames
from fusion.prosody import NeutralBaseline, build_baseline, prosody
from fusion.voice_cnn import ARCHITECTURE, AudioEmotionNet, CnnVoice

DATA_DIR = Path(fusion.__file__).resolve().parents[1].parent / "shared/data/speech"
CACHE_DIR = Path("/tmp/fusion_audio_cache")
EMBEDDED_DIR = EMBEDDED_ROOT / ARCHITECTURE
DATASETS = ("ravdess", "emodb", "ko_emotional")
LABEL_MAP = {"angry": "ANGRY", "sad": "SAD", "disgust": "DISGUST", "happy": "HAPPY",
             "fear": "FEAR", "fearful": "FEAR", "surprised": "SURPRISE"}
NEUTRAL = {"ravdess": ("neutral", "calm"), "emodb": ("neutral",), "ko_emotional": ("neutral",)}
GAIN_DB = 6.0
C0_PER_DB = np.sqrt(128.0)  # a level change of g dB shifts every log-mel bin by g, hence MFCC 0 by g·√n_mels
BATCH = 64


@dataclass(frozen=True)
class Recipe:
    """Training tunables; each is a CLI flag of ``python -m fusion.train.audio`` and is saved in config.json."""

    epochs: int = field(default=40, metadata={"help": "maximum epochs"})
    patience: int = field(default=8, metadata={"help": "epochs without a better dev score before stopping"})
    lr: float = field(default=2e-3, metadata={"help": "peak of the one-cycle schedule"})
    p_personal: float = field(default=0.5, metadata={"help": "share of windows normalised by the speaker's own baseline (else male/female)"})
    aug_copies: int = field(default=2, metadata={"help": "tempo/pitch-changed copies per training clip (cached features)"})
    tempo: float = field(default=0.15, metadata={"help": "copies are time-stretched by a random factor in 1 ± tempo"})
    semitones: float = field(default=2.0, metadata={"help": "copies are pitch-shifted by a random ± semitones"})
    mixup: float = field(default=0.0, metadata={"help": "Beta(α, α) mixup of window pairs and their targets; 0 = off"})
    average: int = field(default=1, metadata={"help": "final weights = mean of the N best epochs by dev (BatchNorm re-estimated); 1 = best"})
    balanced: bool = field(default=False, metadata={"help": "draw clips class-balanced within each dataset (loss weights follow the draw)"})


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


def read_audio(path: str | Path) -> np.ndarray:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return y if sr == SAMPLE_RATE else librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)


def read_rows(data: Path, ds: str) -> list[dict]:
    """One dataset's ``labels.csv`` rows: absolute paths, speakers prefixed by the dataset."""
    path = Path(data) / ds / "labels.csv"
    try:
        with path.open(encoding="utf-8") as fh:
            return [{**r, "dataset": ds, "path": str(path.parent / r["path"]), "speaker": f"{ds}:{r['speaker']}"}
                    for r in csv.DictReader(fh)]
    except OSError as exc:
        raise InputError(path, f"cannot read it ({exc.strerror}): --data must name the folder holding "
                               "ravdess/, emodb/ and ko_emotional/") from exc


def _features(args: tuple[str, bool, int, Recipe]) -> tuple[np.ndarray, list, list]:
    path, augment, seed, recipe = args
    y = read_audio(path)
    feats = mfcc(y)
    spans = [span_frames(s, len(feats)) for s in voiced_spans(audio_from_array(y, SAMPLE_RATE))] or [(0, len(feats))]
    aug = []
    if augment:
        rng = np.random.default_rng(seed)
        trimmed, _ = librosa.effects.trim(y, top_db=35)
        aug.append(mfcc(trimmed))
        for _ in range(recipe.aug_copies):
            z = librosa.effects.time_stretch(trimmed, rate=rng.uniform(1 - recipe.tempo, 1 + recipe.tempo))
            z = librosa.effects.pitch_shift(z, sr=SAMPLE_RATE, n_steps=rng.uniform(-recipe.semitones, recipe.semitones))
            aug.append(mfcc(z))
    return feats, spans, aug


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


def load_clips(data: Path, cache: Path, limit_per_class: int | None = None, recipe: Recipe = Recipe()) -> list[Clip]:
    """Every clip of the three datasets (or a per-class subset) with its features, computed once and cached."""
    rows = limit_rows([r for ds in DATASETS for r in read_rows(data, ds)], limit_per_class)
    aug = f"aug{recipe.aug_copies}_t{recipe.tempo:g}_st{recipe.semitones:g}"
    key = cache / f"speech_feats_{aug}_{len(rows)}.npz"
    if limit_per_class is not None:
        digest = hashlib.sha1("\n".join(r["path"] for r in rows).encode()).hexdigest()[:12]
        key = cache / f"speech_feats_{aug}_{len(rows)}_{digest}.npz"
    if key.is_file():
        stored = np.load(key, allow_pickle=True)["items"]
    else:
        todo = [(r["path"], r["split"] == "train" and r["label"] in LABEL_MAP, i, recipe) for i, r in enumerate(rows)]
        with Pool(2) as pool:
            stored = pool.map(_features, todo, chunksize=8)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(key, items=np.array(stored, dtype=object))
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


def sampling_probs(train: list[Clip]) -> np.ndarray:
    """Per clip: each dataset keeps its share of draws, split evenly over the labels it has."""
    groups = [(c.dataset, c.label) for c in train]
    per_group = Counter(groups)
    per_ds = {ds: sum(c.dataset == ds for c in train) for ds in DATASETS}
    n_labels = {ds: len({lab for d, lab in per_group if d == ds}) for ds in DATASETS}
    p = np.array([per_ds[d] / (n_labels[d] * per_group[(d, lab)]) for d, lab in groups])
    return p / p.sum()


def training_batches(train: list[Clip], personal, gendered, labels, frames, rng, batch, p_personal, probs=None):
    """One epoch of (x, y) batches: random copy, random crop, random baseline kind, random level.

    ``probs``: draw the epoch's clips with these probabilities (with replacement) instead of a permutation.
    """
    order = rng.permutation(len(train)) if probs is None else rng.choice(len(train), len(train), p=probs)
    for a in range(0, len(order), batch):
        xs, ys = [], []
        for i in order[a:a + batch]:
            c = train[i]
            seq = c.aug[rng.integers(len(c.aug))]
            if len(seq) > frames:
                s = rng.integers(len(seq) - frames + 1)
                seq = seq[s:s + frames]
            seq = pad_or_cut(seq, frames).copy()
            seq[:, 0] += rng.uniform(-GAIN_DB, GAIN_DB) * C0_PER_DB * (np.abs(seq[:, 0]) > 0)
            base = personal[c.speaker] if rng.random() < p_personal else gendered[c.gender]
            xs.append(base.normalise(seq))
            ys.append(labels.index(LABEL_MAP[c.label]))
        yield torch.from_numpy(np.stack(xs).transpose(0, 2, 1).astype(np.float32)), torch.tensor(ys)


def clip_probs(model: CnnVoice, clips: list[Clip], baselines: list[NeutralBaseline]) -> np.ndarray:
    """P(labels) per clip with the product's inference code (windows over voiced audio)."""
    out = []
    for c, b in zip(clips, baselines):
        spans = [(a * 512 / SAMPLE_RATE, e * 512 / SAMPLE_RATE) for a, e in c.spans]
        out.append(model.diary_probs(c.feats, spans, b))
    return np.stack(out)


def evaluate(model: CnnVoice, clips: list[Clip], split: str, personal, gendered) -> dict:
    """Per dataset and baseline kind: UAR on the six labels, and SAD-vs-rest AUC on Korean speakers."""
    labels = list(default_config().labels.en)
    res = {}
    for kind in ("gender", "personal"):
        for ds in DATASETS:
            sel = [c for c in clips if c.split == split and c.dataset == ds and c.label in LABEL_MAP]
            base = [personal[c.speaker] if kind == "personal" else gendered[c.gender] for c in sel]
            p = clip_probs(model, sel, base)
            y = np.array([labels.index(LABEL_MAP[c.label]) for c in sel])
            res[f"{ds}/{kind}/uar"] = float(recall_score(y, p.argmax(1), labels=sorted(set(y)), average="macro"))
            if ds == "ko_emotional":
                sel_all = [c for c in clips if c.split == split and c.dataset == ds]
                base = [personal[c.speaker] if kind == "personal" else gendered[c.gender] for c in sel_all]
                p_sad = clip_probs(model, sel_all, base)[:, labels.index("SAD")]
                res[f"{ds}/{kind}/sad_auc"] = sad_vs_rest_auc([c.label == "sad" for c in sel_all], p_sad)
    return res


def dev_score(metrics: dict) -> float:
    return float(np.mean([v for k, v in metrics.items() if k.endswith("/uar")]))


def mixup_loss(net, loss_fn, x, y, alpha: float, rng) -> torch.Tensor:
    """Loss on Beta(α, α) convex mixes of the batch with a shuffled copy of itself (plain loss when α = 0)."""
    if alpha <= 0:
        return loss_fn(net(x), y)
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(y)))
    out = net(lam * x + (1 - lam) * x[perm])
    return lam * loss_fn(out, y) + (1 - lam) * loss_fn(out, y[perm])


def average_states(states: list[dict]) -> dict:
    """Mean of float tensors over state dicts (integer counters taken from the first)."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v
            for k, v in states[0].items()}


def train(clips, cfg, seed, recipe: Recipe, progress=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = list(cfg.labels.en)
    personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
    tr = [c for c in clips if c.split == "train" and c.label in LABEL_MAP]
    y_tr = [labels.index(LABEL_MAP[c.label]) for c in tr]
    probs = sampling_probs(tr) if recipe.balanced else None
    counts = np.bincount(y_tr, minlength=len(labels))
    drawn = counts if probs is None else np.bincount(y_tr, weights=probs, minlength=len(labels)) * len(tr)
    weights = torch.tensor(drawn.sum() / (len(labels) * np.maximum(drawn, 1)), dtype=torch.float32)
    net = AudioEmotionNet(len(labels))
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr, weight_decay=1e-2)
    steps = recipe.epochs * int(np.ceil(len(tr) / BATCH))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    model = CnnVoice(net)

    def batches():
        return training_batches(tr, personal, gendered, labels, cfg.audio.frames, rng, BATCH, recipe.p_personal, probs)

    kept, best_epoch, bad = [], 0, 0  # kept: (dev score, epoch, state) of the best `average` epochs
    for epoch in range(1, recipe.epochs + 1):
        net.train()
        t0, total = time.time(), 0.0
        for x, y in batches():
            opt.zero_grad()
            loss = mixup_loss(net, loss_fn, x, y, recipe.mixup, rng)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
        net.eval()
        dev = evaluate(model, clips, "dev", personal, gendered)
        score = dev_score(dev)
        line = f"epoch {epoch:2d} loss {total / len(tr):.3f} dev {score:.3f} ({time.time() - t0:.1f}s)"
        if progress is None:
            print(line, flush=True)
        else:
            progress[0].console.log(line)
            progress[0].advance(progress[1])
        if not kept or score > kept[0][0]:
            best_epoch, bad = epoch, 0
        else:
            bad += 1
        kept = sorted(kept + [(score, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()})],
                      key=lambda t: -t[0])[:recipe.average]
        if bad >= recipe.patience:
            break
    net.load_state_dict(average_states([s for _, _, s in kept]))
    if recipe.average > 1:
        update_bn(batches(), net)
    return net.eval(), best_epoch, len(tr), counts.tolist()


def prosody_reference(data: Path) -> dict:
    """Per gender: median over ko_emotional TRAIN speakers of each one's median neutral-clip prosody."""
    per_speaker = defaultdict(list)
    for r in read_rows(data, "ko_emotional"):
        if r["split"] == "train" and r["label"] == "neutral":
            p = prosody(read_audio(r["path"]))
            per_speaker[(r["gender"], r["speaker"])].append((p.pitch_hz, p.energy_db, p.rate_per_s))
    ref = {}
    for g in ("male", "female"):
        med = np.median([np.nanmedian(v, axis=0) for (gg, _), v in per_speaker.items() if gg == g], axis=0)
        ref[g] = dict(zip(("pitch_hz", "energy_db", "rate_per_s"), np.round(med, 2).tolist()))
    return ref


def speaker_report(model: CnnVoice, data: Path, cfg: Config, speakers=("emg", "ned")) -> list[dict]:
    """Per clip of the Korean test speakers: P(SAD) and prosody relative to gender and personal baselines.

    The personal baseline is built from all of the speaker's neutral clips, so its neutral rows are in-sample.
    """
    rows = [r for r in read_rows(data, "ko_emotional") if r["speaker"].split(":")[1] in speakers]
    out = []
    for spk in speakers:
        mine = [r for r in rows if r["speaker"].endswith(":" + spk)]
        audio = [read_audio(r["path"]) for r in mine]
        bases = {"gender": NeutralBaseline.from_config(mine[0]["gender"], cfg.audio),
                 "personal": build_baseline([a for a, r in zip(audio, mine) if r["label"] == "neutral"], spk, cfg.audio)}
        labels = cfg.labels.en
        sad = labels.index("SAD")
        for r, y in zip(mine, audio):
            p = prosody(y)
            row = {"speaker": spk, "speaker_gender": r["gender"], "file": Path(r["path"]).name, "label": r["label"],
                   "pitch_hz": p.pitch_hz, "energy_db": p.energy_db, "rate_per_s": p.rate_per_s}
            for kind, b in bases.items():
                probs = model.diary_probs(mfcc(y), voiced_spans(audio_from_array(y, SAMPLE_RATE)), b)
                rel = p.relative_to(b)
                row[kind] = {"p_sad": float(probs[sad]), "top": labels[int(probs.argmax())],
                             "semitones": rel["pitch_semitones"], "energy_db": rel["energy_delta_db"],
                             "rate_ratio": rel["rate_ratio"]}
            out.append(row)
    return out


def print_speaker_report(rows: list[dict]) -> None:
    print(f"{'clip':14s} {'label':8s} | gender: P(SAD) top      st    dB  rate | personal: P(SAD) top      st    dB  rate")
    for r in rows:
        cells = [f"{r[k]['p_sad']:.2f} {r[k]['top']:8s} {r[k]['semitones']:+5.1f} {r[k]['energy_db']:+5.1f} "
                 f"{r[k]['rate_ratio']:.2f}" for k in ("gender", "personal")]
        print(f"{r['file']:14s} {r['label']:8s} |         {cells[0]} |           {cells[1]}")


def _drop(value: float) -> float:
    """A drop below the baseline as a positive number (no measurement: no drop)."""
    return 0.0 if value is None or np.isnan(value) else -value


def cue_aucs(rows: list[dict], pitch_weight: float) -> dict[str, dict[str, float]]:
    """SAD-vs-rest ROC-AUC of each low-mood cue over the report's clips (neutral included), per baseline kind.

    Cues point the way low mood is expected to go: P(SAD), pitch drop (semitones), energy drop (dB), slowing
    (rate ratio below 1), and the product's depressed-voice score P(SAD) + ``pitch_weight`` · max(pitch drop, 0).
    """
    cues = {"P(SAD)": lambda c: c["p_sad"], "pitch drop": lambda c: _drop(c["semitones"]),
            "energy drop": lambda c: _drop(c["energy_db"]), "slowing": lambda c: _drop(c["rate_ratio"] - 1),
            f"P(SAD) + {pitch_weight:g} x pitch drop": lambda c: c["p_sad"] + pitch_weight * max(_drop(c["semitones"]), 0)}
    is_sad = [r["label"] == "sad" for r in rows]
    return {name: {kind: float(roc_auc_score(is_sad, [cue(r[kind]) for r in rows])) for kind in ("gender", "personal")}
            for name, cue in cues.items()}


def print_figures(name: str, metrics: dict) -> None:
    print(f"{name}:")
    for k in sorted(metrics):
        print(f"  {k:38s} {metrics[k]:.3f}")


def save_model(out: Path, model: CnnVoice, meta: dict) -> None:
    """``model.safetensors`` (the state dict; no pickle), ``labels.json``, ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, out / "model.safetensors")
    (out / "labels.json").write_text(json.dumps(meta["labels"]))
    (out / "config.json").write_text(json.dumps(meta, indent=2))


def _meta(cfg, seed, recipe: Recipe, best_epoch, n_train, counts, dev, test, command, seconds, limit=None):
    return {
        "architecture": ARCHITECTURE,
        "input": "(B, 13, 100) MFCC-delta windows (DESIGN.md §2)",
        "labels": list(cfg.labels.en),
        "data": {ds: f"shared/data/speech/{ds}/labels.csv" for ds in DATASETS},
        "split": "labels.csv split column: train for fitting, dev for early stopping, test only reported",
        "limit_per_class": limit,
        "train_clips_per_label": dict(zip(cfg.labels.en, counts)), "train_clips": n_train,
        "recipe": {"seed": seed, **asdict(recipe), "best_epoch": best_epoch, "optimizer": "AdamW",
                   "weight_decay": 1e-2, "schedule": "OneCycle", "batch": BATCH,
                   "loss": "CrossEntropy, class weights, label smoothing 0.05", "gain_db": GAIN_DB,
                   "crop": "random 100-frame crop of the silence-trimmed clip"},
        "metrics": {"dev": dev, "test": test},
        "eval": "clip = mean of 100-frame window probabilities over voiced audio (CnnVoice.diary_probs); "
                "personal baseline = that speaker's neutral clips; gender = config male/female",
        "command": command,
        "train_seconds": seconds,
    }


def train_model(out: Path, data: Path = DATA_DIR, cache: Path = CACHE_DIR, seed: int = 0,
                recipe: Recipe | None = None, limit_per_class: int | None = None, progress: bool = True,
                command: str | None = None) -> dict:
    """Train on the train split (early stopping on dev), save to ``out``; returns dev and test figures."""
    from fusion.train.text import progress_bar

    torch.set_num_threads(2)
    cfg = default_config()
    recipe = recipe or Recipe()
    epochs = recipe.epochs
    t0 = time.time()
    with progress_bar(progress) as bar:
        task = bar.add_task("audio: features", total=None)
        clips = load_clips(Path(data), Path(cache), limit_per_class, recipe)
        bar.update(task, description=f"audio: epochs ({len(clips)} clips)", total=epochs, completed=0)
        net, best_epoch, n_train, counts = train(clips, cfg, seed, recipe, progress=(bar, task))
        bar.update(task, description="audio: evaluating")
        model = CnnVoice(net)
        personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
        dev = evaluate(model, clips, "dev", personal, gendered)
        test = evaluate(model, clips, "test", personal, gendered)
    changed = [f"--set {k}={v}" for k, v in asdict(recipe).items() if v != getattr(Recipe(), k) and k != "epochs"]
    command = command or " ".join([f"fusion train audio --out {out} --seed {seed} --epochs {epochs}", *changed] + (
        [f"--limit-per-class {limit_per_class}"] if limit_per_class is not None else []))
    save_model(Path(out), model, _meta(cfg, seed, recipe, best_epoch, n_train, counts, dev, test,
                                       command, round(time.time() - t0), limit_per_class))
    return {"dev": dev, "test": test}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=EMBEDDED_DIR)
    ap.add_argument("--data", type=Path, default=DATA_DIR)
    ap.add_argument("--cache", type=Path, default=CACHE_DIR)
    ap.add_argument("--seed", type=int, default=0)
    for f in fields(Recipe):
        flag, value = "--" + f.name.replace("_", "-"), f.default
        if isinstance(value, bool):
            ap.add_argument(flag, action="store_true", help=f.metadata["help"])
        else:
            ap.add_argument(flag, type=type(value), default=value, help=f.metadata["help"] + f" (default {value})")
    ap.add_argument("--eval-only", action="store_true", help="print the figures of the model in --out")
    ap.add_argument("--prosody-reference", action="store_true", help="print the male/female prosody reference")
    ap.add_argument("--speaker-report", type=Path, help="with --eval-only: per-clip P(SAD) and prosody of the "
                    "Korean test speakers, printed and written to this JSON file")
    args = ap.parse_args(argv)
    recipe = Recipe(**{k: getattr(args, k) for k in asdict(Recipe())})
    torch.set_num_threads(2)
    cfg = default_config()
    if args.prosody_reference:
        print(json.dumps(prosody_reference(args.data), indent=2))
        return
    t0 = time.time()
    clips = load_clips(args.data, args.cache, recipe=recipe)
    print(f"{len(clips)} clips, features in {time.time() - t0:.0f}s", flush=True)
    personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
    if args.eval_only:
        model = load_audio_model_from(str(args.out), cfg).scorer
    else:
        net, best_epoch, n_train, counts = train(clips, cfg, args.seed, recipe)
        model = CnnVoice(net)
    dev = evaluate(model, clips, "dev", personal, gendered)
    test = evaluate(model, clips, "test", personal, gendered)
    print_figures("dev", dev)
    print_figures("test", test)
    if args.speaker_report:
        report = speaker_report(model, args.data, cfg)
        print_speaker_report(report)
        args.speaker_report.write_text(json.dumps(report, indent=2))
        print("SAD-vs-rest ROC-AUC of each cue (Korean test speakers, neutral clips included):")
        for cue, auc in cue_aucs(report, cfg.alerts.depressed_pitch_weight).items():
            print(f"  {cue:32s} gender {auc['gender']:.3f}  personal {auc['personal']:.3f}")
    if args.eval_only:
        return
    command = " ".join(["python -m fusion.train.audio", *(argv if argv is not None else sys.argv[1:])])
    save_model(args.out, model, _meta(cfg, args.seed, recipe, best_epoch, n_train, counts,
                                      dev, test, command, round(time.time() - t0)))
    print(f"saved {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
