"""Train the CNN-BiLSTM voice emotion model on ``speech/`` of the data folder:
``fusion train audio --arch cnn-bilstm-mfcc``.

Train split of ravdess, emodb and ko_emotional (speaker-independent splits from labels.csv);
early stopping on dev; figures on test are printed, never used for a choice. Clips and
features are in ``audio_clips``, the recipe and its fitting in ``audio_fit``, the Korean
speaker report in ``audio_report``. The recipe is recorded in the model's config.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save

from fusion.config import default_config
from fusion.files import atomic_write
from fusion.progress import progress_bar
from fusion.train.audio_clips import DATASETS, gender_baselines, load_clips, speaker_baselines
from fusion.train.audio_fit import BATCH, GAIN_DB, Recipe, evaluate, fit
from fusion.voice.cnn import ARCHITECTURE, CnnVoice
from fusion.voice.model import load_audio_model_from


def print_figures(name: str, metrics: dict) -> None:
    print(f"{name}:")
    for k in sorted(metrics):
        print(f"  {k:38s} {metrics[k]:.3f}")


def save_model(out: Path, model: CnnVoice, meta: dict) -> None:
    """``model.safetensors`` (the state dict; no pickle), ``labels.json``, ``config.json``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "model.safetensors", save({k: v.contiguous() for k, v in model.net.state_dict().items()}))
    atomic_write(out / "labels.json", json.dumps(meta["labels"]))
    atomic_write(out / "config.json", json.dumps(meta, indent=2))


def _meta(cfg, seed, recipe: Recipe, best_epoch, n_train, counts, dev, test, command, seconds, limit=None):
    return {
        "architecture": ARCHITECTURE,
        "input": "(B, 13, 100) MFCC-delta windows (DESIGN.md §2)",
        "labels": list(cfg.labels.en),
        "data": {ds: f"speech/{ds}/labels.csv" for ds in DATASETS},
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


def train_model(out: Path, data: Path, cache: Path, seed: int = 0, recipe: Recipe | None = None,
                limit_per_class: int | None = None, progress: bool = True, command: str | None = None) -> dict:
    """Train on the speech datasets in ``data`` (early stopping on dev), save to ``out``; returns dev and test
    figures."""
    torch.set_num_threads(2)
    cfg = default_config()
    recipe = recipe or Recipe()
    epochs = recipe.epochs
    t0 = time.time()
    with progress_bar(progress) as bar:
        task = bar.add_task("audio: features", total=None)
        clips = load_clips(data, cache, recipe.augment, limit_per_class)
        bar.update(task, description=f"audio: epochs ({len(clips)} clips)", total=epochs, completed=0)
        net, best_epoch, n_train, counts = fit(clips, cfg, seed, recipe, progress=(bar, task))
        bar.update(task, description="audio: evaluating")
        model = CnnVoice(net)
        personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
        dev = evaluate(model, clips, "dev", personal, gendered)
        test = evaluate(model, clips, "test", personal, gendered)
    changed = [f"--set {k}={v}" for k, v in asdict(recipe).items() if v != getattr(Recipe(), k) and k != "epochs"]
    limit = [f"--limit-per-class {limit_per_class}"] if limit_per_class is not None else []
    command = command or " ".join([f"fusion train audio --arch {ARCHITECTURE} --out {out} --seed {seed} "
                                   f"--epochs {epochs}", *changed] + limit)
    save_model(Path(out), model, _meta(cfg, seed, recipe, best_epoch, n_train, counts, dev, test,
                                       command, round(time.time() - t0), limit_per_class))
    return {"dev": dev, "test": test}


def evaluate_model(model_dir: Path, data: Path, cache: Path, limit_per_class: int | None = None,
                   progress: bool = True) -> dict:
    """Dev and test figures of the CNN-BiLSTM in ``model_dir`` (trains nothing)."""
    torch.set_num_threads(2)
    cfg = default_config()
    model = load_audio_model_from(str(model_dir), cfg).scorer
    with progress_bar(progress) as bar:
        bar.add_task("audio: features", total=None)
        clips = load_clips(data, cache, Recipe().augment, limit_per_class)
    personal, gendered = speaker_baselines(clips, cfg), gender_baselines(cfg)
    return {split: evaluate(model, clips, split, personal, gendered) for split in ("dev", "test")}
