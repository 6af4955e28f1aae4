"""Fine-tune a transformers model into the six-label text emotion classifier (the original recipe).

DESIGN.md §2: AdamW lr 2e-5, weight_decay 0.01, batch 16, 5–6 epochs, early stopping with
patience 2 on dev macro-F1, dropout 0.1, max_grad_norm 1.0, CrossEntropyLoss with class
weights, max_length 256. Trains on ``ko_emotion_dialogue.csv`` train (optionally with the
elderly extra set), chooses the epoch on dev, reports dev and test, and writes a directory
``HFTextModel`` loads: ``model.safetensors`` + ``config.json`` + tokenizer files +
``label_map.json`` + ``training.json`` (recipe, data, split, metrics).

    fusion train text --recipe hf --base klue/roberta-base --out models/text-hf
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fusion.config import default_config
from fusion.eval.metrics import macro_f1
from fusion.files import atomic_write
from fusion.progress import progress_bar
from fusion.train.text import evaluate
from fusion.train.text_data import DIALOGUE, ELDERLY, limit_rows, read_split

RECIPE = {
    "optimizer": "AdamW", "lr": 2e-5, "weight_decay": 0.01, "batch_size": 16, "epochs": 6, "patience": 2,
    "dropout": 0.1, "max_grad_norm": 1.0, "max_length": 256, "loss": "CrossEntropyLoss, class weights n/(k·count)",
    "selection": "dev macro-F1 after each epoch; best epoch kept",
}


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _load_base(base: str, labels: Sequence[str], dropout: float):
    """Tokenizer and a fresh six-way classification head on ``base`` (hub id or local directory)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    local = Path(base).expanduser().is_dir()
    name = str(Path(base).expanduser()) if local else base
    config = AutoConfig.from_pretrained(name, local_files_only=local)
    for attr in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "dropout"):
        if hasattr(config, attr):
            setattr(config, attr, dropout)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = "single_label_classification"
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local)
    model = AutoModelForSequenceClassification.from_pretrained(
        name, config=config, local_files_only=local, ignore_mismatched_sizes=True
    )
    return tokenizer, model


def _predict(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 32) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            out.append(model(**enc).logits.float().argmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def train_hf(
    base: str,
    out: Path,
    data: Path,
    seed: int = 0,
    epochs: int = RECIPE["epochs"],
    patience: int = RECIPE["patience"],
    batch_size: int = RECIPE["batch_size"],
    lr: float = RECIPE["lr"],
    max_length: int = RECIPE["max_length"],
    elderly: bool = False,
    limit_per_class: int | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune ``base`` on the text CSVs in ``data`` with the original recipe, save the best dev epoch to ``out``."""
    import torch
    from torch import nn

    from fusion.text.model import HFTextModel

    labels = tuple(default_config().labels.ko)
    _seed_everything(seed)
    texts, y = read_split(data, DIALOGUE, "train")
    sources = [f"{DIALOGUE} split=train column=text"]
    if elderly:
        more = read_split(data, ELDERLY, "train")
        texts, y = texts + more[0], y + more[1]
        sources.append(f"{ELDERLY} split=train column=text")
    texts, y = limit_rows(texts, y, limit_per_class)
    dev_texts, dev_y = limit_rows(*read_split(data, DIALOGUE, "dev"), limit_per_class)
    target = torch.tensor([labels.index(label) for label in y])
    counts = np.bincount(target.numpy(), minlength=len(labels))
    weights = torch.tensor(len(y) / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)

    tokenizer, model = _load_base(base, labels, RECIPE["dropout"])
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": RECIPE["weight_decay"]},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, best_epoch, bad, history = -1.0, None, 0, 0, []
    steps = epochs * ((len(texts) + batch_size - 1) // batch_size)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fine-tuning {Path(base).name}", total=steps)
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(texts), generator=generator).tolist()
            total = 0.0
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
                loss = loss_fn(model(**enc).logits, target[idx])
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), RECIPE["max_grad_norm"])
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                bar.advance(task)
            pred = _predict(model, tokenizer, dev_texts, max_length)
            score = macro_f1([labels.index(t) for t in dev_y], pred)
            history.append({"epoch": epoch, "train_loss": round(total / len(texts), 4),
                            "dev_macro_f1": round(score, 4)})
            bar.console.log(f"epoch {epoch}: loss {total / len(texts):.4f}, dev macro-F1 {score:.4f}")
            if score > best:
                best, best_epoch, bad = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= patience:
                    break
    model.load_state_dict(best_state)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    atomic_write(out / "label_map.json",
                 json.dumps({label: i for i, label in enumerate(labels)}, ensure_ascii=False, indent=2) + "\n")
    loaded = HFTextModel(str(out), labels, max_length=max_length)
    metrics = {"dev": evaluate(loaded, dev_texts, dev_y),
               "test": evaluate(loaded, *limit_rows(*read_split(data, DIALOGUE, "test"), limit_per_class))}
    meta = {
        "base": base, "labels": list(labels), "seed": seed,
        "recipe": {**RECIPE, "epochs": epochs, "patience": patience, "batch_size": batch_size, "lr": lr,
                   "max_length": max_length, "best_epoch": best_epoch, "history": history},
        "training_data": {"sources": sources, "rows": len(texts), "per_label": dict(Counter(y)),
                          "limit_per_class": limit_per_class,
                          "selection": f"{DIALOGUE} split=dev", "reported": f"{DIALOGUE} split=test"},
        "metrics": metrics,
    }
    atomic_write(out / "training.json", json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return metrics
