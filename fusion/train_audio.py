"""Train the CNN-BiLSTM voice emotion model on shared/data/speech and report dev/test figures.

    fusion train audio --out DIR [--seed N] [--epochs N] [--limit-per-class N] [--cache DIR]
    python -m fusion.train_audio [--out DIR] [--seed N] [--epochs N] [--data DIR] [--eval-only]

Train split of ravdess, emodb and ko_emotional (speaker-independent splits from labels.csv);
early stopping on dev; figures on test are printed, never used for a choice. Each training
window is normalised either by the speaker's own neutral baseline (built with
``build_baseline`` from their neutral clips, as a user's personal baseline) or by the
male/female baseline of the config, so both work at inference. Augmentation: copies of each
clip with a random tempo change and pitch shift (cached), random 100-frame crops, and a
random level change (an offset of MFCC 0).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import torch
from sklearn.metrics import recall_score, roc_auc_score
from torch import nn

import fusion
from fusion.audio import audio_from_array, voiced_spans
from fusion.audio_branch import (EMBEDDED_DIR, SAMPLE_RATE, AudioEmotionModel, AudioEmotionNet, NeutralBaseline,
                                 build_baseline, load_audio_model_from, mfcc, pad_or_cut, prosody, span_frames)
from fusion.config import Config, default_config

DATA_DIR = Path(fusion.__file__).resolve().parents[1].parent / "shared/data/speech"
CACHE_DIR = Path("/tmp/fusion_audio_cache")
DATASETS = ("ravdess", "emodb", "ko_emotional")
LABEL_MAP = {"angry": "ANGRY", "sad": "SAD", "disgust": "DISGUST", "happy": "HAPPY",
             "fear": "FEAR", "fearful": "FEAR", "surprised": "SURPRISE"}
NEUTRAL = {"ravdess": ("neutral", "calm"), "emodb": ("neutral",), "ko_emotional": ("neutral",)}
N_AUG = 2
TEMPO = (0.85, 1.15)
SEMITONES = (-2.0, 2.0)
GAIN_DB = 6.0
C0_PER_DB = np.sqrt(128.0)  # a level change of g dB shifts every log-mel bin by g, hence MFCC 0 by g·√n_mels


@dataclass
class Clip:
    dataset: str
    speaker: str
    gender: str
    split: str
    label: str            # raw dataset label
    feats: np.ndarray     # full MFCC sequence (frames, 13) of the untrimmed clip
    spans: list           # voiced frame spans, as predict_diary uses them
    aug: list = field(default_factory=list)  # trimmed, augmented MFCC sequences (train only)


def read_audio(path: str | Path) -> np.ndarray:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return y if sr == SAMPLE_RATE else librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE)


def read_rows(data: Path, ds: str) -> list[dict]:
    with (data / ds / "labels.csv").open(encoding="utf-8") as fh:
        return [{**r, "dataset": ds, "path": str(data / ds / r["path"]), "speaker": f"{ds}:{r['speaker']}"}
                for r in csv.DictReader(fh)]


def _features(args: tuple[str, bool, int]) -> tuple[np.ndarray, list, list]:
    path, augment, seed = args
    y = read_audio(path)
    feats = mfcc(y)
    spans = [span_frames(s, len(feats)) for s in voiced_spans(audio_from_array(y, SAMPLE_RATE))] or [(0, len(feats))]
    aug = []
    if augment:
        rng = np.random.default_rng(seed)
        trimmed, _ = librosa.effects.trim(y, top_db=35)
        aug.append(mfcc(trimmed))
        for _ in range(N_AUG):
            z = librosa.effects.time_stretch(trimmed, rate=rng.uniform(*TEMPO))
            z = librosa.effects.pitch_shift(z, sr=SAMPLE_RATE, n_steps=rng.uniform(*SEMITONES))
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


def load_clips(data: Path, cache: Path, limit_per_class: int | None = None) -> list[Clip]:
    """Every clip of the three datasets (or a per-class subset) with its features, computed once and cached."""
    rows = limit_rows([r for ds in DATASETS for r in read_rows(data, ds)], limit_per_class)
    key = cache / f"speech_feats_aug{N_AUG}_{len(rows)}.npz"
    if limit_per_class is not None:
        digest = hashlib.sha1("\n".join(r["path"] for r in rows).encode()).hexdigest()[:12]
        key = cache / f"speech_feats_aug{N_AUG}_{len(rows)}_{digest}.npz"
    if key.is_file():
        stored = np.load(key, allow_pickle=True)["items"]
    else:
        todo = [(r["path"], r["split"] == "train" and r["label"] in LABEL_MAP, i) for i, r in enumerate(rows)]
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


def training_batches(train: list[Clip], personal, gendered, labels, frames, rng, batch, p_personal):
    """One epoch of (x, y) batches: random copy, random crop, random baseline kind, random level."""
    order = rng.permutation(len(train))
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


def clip_probs(model: AudioEmotionModel, clips: list[Clip], baselines: list[NeutralBaseline]) -> np.ndarray:
    """P(labels) per clip with the product's inference code (windows over voiced audio)."""
    out = []
    for c, b in zip(clips, baselines):
        spans = [(a * 512 / SAMPLE_RATE, e * 512 / SAMPLE_RATE) for a, e in c.spans]
        out.append(model.predict_diary(np.zeros(0, np.float32), b, voiced_spans=spans, feats=c.feats))
    return np.stack(out)


def evaluate(model: AudioEmotionModel, clips: list[Clip], split: str, personal, gendered) -> dict:
    """Per dataset and baseline kind: UAR on the six labels, and SAD-vs-rest AUC on Korean speakers."""
    labels = list(model.labels)
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
                res[f"{ds}/{kind}/sad_auc"] = float(roc_auc_score([c.label == "sad" for c in sel_all], p_sad))
    return res


def dev_score(metrics: dict) -> float:
    return float(np.mean([v for k, v in metrics.items() if k.endswith("/uar")]))


def train(clips, cfg, seed, epochs, p_personal, patience=8, progress=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labels = list(cfg.labels.en)
    personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
    tr = [c for c in clips if c.split == "train" and c.label in LABEL_MAP]
    counts = np.bincount([labels.index(LABEL_MAP[c.label]) for c in tr], minlength=len(labels))
    weights = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
    net = AudioEmotionNet(len(labels))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-2)
    steps = epochs * int(np.ceil(len(tr) / 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=0.05)
    model = AudioEmotionModel(net, labels, cfg.labels.en, "training", cfg.audio)
    best, best_state, best_epoch, bad = -1.0, None, 0, 0
    for epoch in range(1, epochs + 1):
        net.train()
        t0, total = time.time(), 0.0
        for x, y in training_batches(tr, personal, gendered, labels, cfg.audio.frames, rng, 64, p_personal):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
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
        if score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    net.load_state_dict(best_state)
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


def speaker_report(model: AudioEmotionModel, data: Path, cfg: Config, speakers=("emg", "ned")) -> list[dict]:
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
        sad = model.labels.index("SAD")
        for r, y in zip(mine, audio):
            p = prosody(y)
            row = {"speaker": spk, "speaker_gender": r["gender"], "file": Path(r["path"]).name, "label": r["label"],
                   "pitch_hz": p.pitch_hz, "energy_db": p.energy_db, "rate_per_s": p.rate_per_s}
            for kind, b in bases.items():
                probs = model.predict_diary(y, b)
                rel = p.relative_to(b)
                row[kind] = {"p_sad": float(probs[sad]), "top": model.labels[int(probs.argmax())],
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


def print_figures(name: str, metrics: dict) -> None:
    print(f"{name}:")
    for k in sorted(metrics):
        print(f"  {k:38s} {metrics[k]:.3f}")


def save_model(out: Path, model: AudioEmotionModel, meta: dict) -> None:
    """``model.pt`` (a plain state dict, loaded with ``weights_only=True``), ``labels.json``, ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.net.state_dict(), out / "model.pt")
    (out / "labels.json").write_text(json.dumps(list(model.labels)))
    (out / "config.json").write_text(json.dumps(meta, indent=2))


def _meta(cfg, seed, epochs, p_personal, best_epoch, n_train, counts, dev, test, command, seconds, limit=None):
    return {
        "architecture": "CNN-BiLSTM (DESIGN.md §2), input (B, 13, 100) MFCC-delta",
        "labels": list(cfg.labels.en),
        "data": {ds: f"shared/data/speech/{ds}/labels.csv" for ds in DATASETS},
        "split": "labels.csv split column: train for fitting, dev for early stopping, test only reported",
        "limit_per_class": limit,
        "train_clips_per_label": dict(zip(cfg.labels.en, counts)), "train_clips": n_train,
        "recipe": {"seed": seed, "max_epochs": epochs, "best_epoch": best_epoch, "optimizer": "AdamW",
                   "lr": 2e-3, "weight_decay": 1e-2, "schedule": "OneCycle", "batch": 64,
                   "loss": "CrossEntropy, class weights, label smoothing 0.05", "aug_copies": N_AUG,
                   "tempo": TEMPO, "semitones": SEMITONES, "gain_db": GAIN_DB, "p_personal": p_personal,
                   "crop": "random 100-frame crop of the silence-trimmed clip"},
        "metrics": {"dev": dev, "test": test},
        "eval": "clip = mean of 100-frame window probabilities over voiced audio (predict_diary); "
                "personal baseline = that speaker's neutral clips; gender = config male/female",
        "command": command,
        "train_seconds": seconds,
    }


def train_model(out: Path, data: Path = DATA_DIR, cache: Path = CACHE_DIR, seed: int = 0, epochs: int = 40,
                p_personal: float = 0.5, limit_per_class: int | None = None, progress: bool = True,
                command: str | None = None) -> dict:
    """Train on the train split (early stopping on dev), save to ``out``; returns dev and test figures."""
    from fusion.train_text import progress_bar

    torch.set_num_threads(2)
    cfg = default_config()
    t0 = time.time()
    with progress_bar(progress) as bar:
        task = bar.add_task("audio: features", total=None)
        clips = load_clips(Path(data), Path(cache), limit_per_class)
        bar.update(task, description=f"audio: epochs ({len(clips)} clips)", total=epochs, completed=0)
        net, best_epoch, n_train, counts = train(clips, cfg, seed, epochs, p_personal, progress=(bar, task))
        bar.update(task, description="audio: evaluating")
        model = AudioEmotionModel(net, list(cfg.labels.en), cfg.labels.en, "embedded:audio-cnn-bilstm", cfg.audio)
        personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
        dev = evaluate(model, clips, "dev", personal, gendered)
        test = evaluate(model, clips, "test", personal, gendered)
    command = command or f"fusion train audio --out {out} --seed {seed} --epochs {epochs}" + (
        f" --limit-per-class {limit_per_class}" if limit_per_class is not None else "")
    save_model(Path(out), model, _meta(cfg, seed, epochs, p_personal, best_epoch, n_train, counts, dev, test,
                                       command, round(time.time() - t0), limit_per_class))
    return {"dev": dev, "test": test}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=EMBEDDED_DIR)
    ap.add_argument("--data", type=Path, default=DATA_DIR)
    ap.add_argument("--cache", type=Path, default=CACHE_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--p-personal", type=float, default=0.5, help="share of training windows normalised by "
                    "the speaker's own baseline (the rest by the male/female config baseline)")
    ap.add_argument("--eval-only", action="store_true", help="print the figures of the model in --out")
    ap.add_argument("--prosody-reference", action="store_true", help="print the male/female prosody reference")
    ap.add_argument("--speaker-report", type=Path, help="with --eval-only: per-clip P(SAD) and prosody of the "
                    "Korean test speakers, printed and written to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cfg = default_config()
    if args.prosody_reference:
        print(json.dumps(prosody_reference(args.data), indent=2))
        return
    t0 = time.time()
    clips = load_clips(args.data, args.cache)
    print(f"{len(clips)} clips, features in {time.time() - t0:.0f}s", flush=True)
    personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
    if args.eval_only:
        model = load_audio_model_from(str(args.out / "model.pt"), cfg)
    else:
        net, best_epoch, n_train, counts = train(clips, cfg, args.seed, args.epochs, args.p_personal)
        model = AudioEmotionModel(net, list(cfg.labels.en), cfg.labels.en, "embedded:audio-cnn-bilstm", cfg.audio)
    dev = evaluate(model, clips, "dev", personal, gendered)
    test = evaluate(model, clips, "test", personal, gendered)
    print_figures("dev", dev)
    print_figures("test", test)
    if args.speaker_report:
        report = speaker_report(model, args.data, cfg)
        print_speaker_report(report)
        args.speaker_report.write_text(json.dumps(report, indent=2))
    if args.eval_only:
        return
    save_model(args.out, model, _meta(cfg, args.seed, args.epochs, args.p_personal, best_epoch, n_train, counts,
                                      dev, test, "python -m fusion.train_audio", round(time.time() - t0)))
    print(f"saved {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
