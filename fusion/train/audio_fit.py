"""Fitting the CNN-BiLSTM: the recipe's tunables, augmented training batches, early stopping on dev.

Each training window is normalised either by the speaker's own neutral baseline (as a user's
personal baseline) or by the male/female baseline of the config, so both work at inference.
Augmentation: the cached tempo/pitch copies, random 100-frame crops and a random level change
(an offset of MFCC 0). Clips are scored with the product's own inference (``CnnVoice.diary_probs``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from fusion.audio import SAMPLE_RATE
from fusion.config import default_config
from fusion.eval.metrics import roc_auc, uar
from fusion.train.audio_clips import DATASETS, LABEL_MAP, Augment, Clip, gender_baselines, speaker_baselines
from fusion.voice.cnn import AudioEmotionNet, CnnVoice
from fusion.voice.mfcc import pad_or_cut
from fusion.voice.prosody import NeutralBaseline

GAIN_DB = 6.0
C0_PER_DB = np.sqrt(128.0)  # a level change of g dB shifts every log-mel bin by g, hence MFCC 0 by g·√n_mels
BATCH = 64


@dataclass(frozen=True)
class Recipe:
    """Training tunables; each is a ``--set FIELD=VALUE`` of ``fusion train audio`` and is saved in config.json."""

    epochs: int = field(default=40, metadata={"help": "maximum epochs"})
    patience: int = field(default=8, metadata={"help": "epochs without a better dev score before stopping"})
    lr: float = field(default=2e-3, metadata={"help": "peak of the one-cycle schedule"})
    p_personal: float = field(default=0.5, metadata={
        "help": "share of windows normalised by the speaker's own baseline (else male/female)"})
    aug_copies: int = field(default=2, metadata={
        "help": "tempo/pitch-changed copies per training clip (cached features)"})
    tempo: float = field(default=0.15, metadata={"help": "copies are time-stretched by a random factor in 1 ± tempo"})
    semitones: float = field(default=2.0, metadata={"help": "copies are pitch-shifted by a random ± semitones"})
    mixup: float = field(default=0.0, metadata={"help": "Beta(α, α) mixup of window pairs and their targets; 0 = off"})
    average: int = field(default=1, metadata={
        "help": "final weights = mean of the N best epochs by dev (BatchNorm re-estimated); 1 = best"})
    balanced: bool = field(default=False, metadata={
        "help": "draw clips class-balanced within each dataset (loss weights follow the draw)"})


    @property
    def augment(self) -> Augment:
        return Augment(self.aug_copies, self.tempo, self.semitones)


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
            res[f"{ds}/{kind}/uar"] = uar(y, p.argmax(1))
            if ds == "ko_emotional":
                sel_all = [c for c in clips if c.split == split and c.dataset == ds]
                base = [personal[c.speaker] if kind == "personal" else gendered[c.gender] for c in sel_all]
                p_sad = clip_probs(model, sel_all, base)[:, labels.index("SAD")]
                res[f"{ds}/{kind}/sad_auc"] = roc_auc([c.label == "sad" for c in sel_all], p_sad)
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


def fit(clips, cfg, seed, recipe: Recipe, progress=None):
    """Train a fresh network on the train clips, early-stopped on dev; (network, best epoch, n train, label counts)."""
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

