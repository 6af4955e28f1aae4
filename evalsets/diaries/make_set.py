"""Build the ``fusion eval diaries`` sets: multi-sentence Korean diaries, a label per sentence, a polarity per diary.

Two sources, each split into ``dev`` (choices are made here) and ``test`` (figures only):

- ``composed``: diaries put together from ``ko_emotion_dialogue.csv`` (감성대화) rows of the split, the way
  real days go. A row contributes its first utterance (``text``, which carries the label) and the same
  speaker's next turn (``text2``, natural context), every sentence labelled with the row's emotion.
  positive: 기쁨 rows, half of them with one mild sentence of a 당황 or 불안 row somewhere; negative: rows of
  the five other labels; mixed: 기쁨 and other rows of similar weight; plain: neutral (중립) sentences of
  ``ko_single_turn_7.csv`` of the same split (short everyday remarks).
- ``written``: diaries written for this project in plain everyday language (``written_dev.jsonl``,
  ``written_test.jsonl`` beside this script; their sentences are labelled by hand).

Every diary also comes as STT without punctuation would write it (``unpunctuated``: the sentences joined by
one space, punctuation removed), to measure sentence splitting. Writes ``dev.jsonl`` and ``test.jsonl`` beside
this script (fixed seed: the same files from the same data).

    python evalsets/diaries/make_set.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import numpy as np

from fusion.eval.diaries import unpunctuated

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"
SEED = 0
NEGATIVE = ("당황", "분노", "불안", "상처", "슬픔")
MILD = ("당황", "불안")
PLAIN = "중립"
MIN_SENTENCES, MAX_SENTENCES = 4, 8
# Composed diaries of each polarity per split (the written ones come as written).
COUNTS = {"dev": {"positive": 40, "negative": 30, "mixed": 20, "plain": 20},
          "test": {"positive": 80, "negative": 60, "mixed": 40, "plain": 40}}
_END = re.compile(r"(?<=[.?!…])\s+")
_HANGUL_ONLY = re.compile(r"[가-힣 .,?!…]+")     # plain remarks with no Latin, digits or emoticons


def sentences_of(text: str) -> list[str]:
    """A punctuated utterance's sentences (cut after . ? ! … and a space); [] for an empty one."""
    return [s.strip() for s in _END.split(text.strip()) if s.strip()]


def read_csv(path: Path, split: str) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def row_sentences(row: dict[str, str]) -> list[dict[str, str]]:
    """A 감성대화 row's first utterance and the same speaker's next turn, each sentence with the row's label."""
    texts = sentences_of(row["text"]) + sentences_of(row.get("text2") or "")
    return [{"text": t, "label": row["label"]} for t in texts]


def usable(sentences: list[dict[str, str]]) -> bool:
    """Punctuated, of a size a diary sentence has, and at most half a diary."""
    return (0 < len(sentences) <= MAX_SENTENCES // 2
            and all(4 <= len(s["text"]) <= 80 and s["text"][-1] in ".?!…" for s in sentences))


class Pools:
    """The split's rows by label, each drawn at most once (a diary never repeats another's row)."""

    def __init__(self, rows: list[dict[str, str]], plain: list[str], rng: np.random.Generator):
        self.rng = rng
        self.by_label: dict[str, list[list[dict[str, str]]]] = {}
        for r in rows:
            if usable(s := row_sentences(r)):
                self.by_label.setdefault(r["label"], []).append(s)
        for units in self.by_label.values():
            rng.shuffle(units)
        self.plain = [t for t in plain if 10 <= len(t) <= 60 and _HANGUL_ONLY.fullmatch(t)]
        rng.shuffle(self.plain)

    def take(self, label: str) -> list[dict[str, str]]:
        return self.by_label[label].pop()

    def take_plain(self) -> dict[str, str]:
        text = self.plain.pop()
        return {"text": text if text[-1] in ".?!…" else text + ".", "label": PLAIN}


def fill(pools: Pools, labels: list[str], rng: np.random.Generator) -> list[dict[str, str]]:
    """Rows of the given labels in turn until the diary holds at least ``MIN_SENTENCES``."""
    out: list[dict[str, str]] = []
    k = 0
    while len(out) < MIN_SENTENCES:
        unit = pools.take(labels[k % len(labels)])
        if len(out) + len(unit) <= MAX_SENTENCES - 1:
            out += unit
        k += 1
    return out


def compose(polarity: str, pools: Pools, rng: np.random.Generator) -> list[dict[str, str]]:
    if polarity == "positive":
        sents = fill(pools, ["기쁨"], rng)
        if rng.random() < 0.5:
            mild = pools.take(str(rng.choice(MILD)))[0]
            sents.insert(int(rng.integers(1, len(sents) + 1)), mild)
        return sents
    if polarity == "negative":
        return fill(pools, list(rng.permutation(NEGATIVE)), rng)
    if polarity == "mixed":
        good = pools.take("기쁨")
        bad = pools.take(str(rng.choice(NEGATIVE)))
        while len(good) + len(bad) < MIN_SENTENCES:
            good += pools.take("기쁨")[:1]
        return good + bad if rng.random() < 0.5 else bad + good
    return [pools.take_plain() for _ in range(int(rng.integers(MIN_SENTENCES, MAX_SENTENCES + 1)))]


def diary(ident: str, source: str, polarity: str, sentences: list[dict[str, str]]) -> dict:
    texts = [s["text"] for s in sentences]
    return {"id": ident, "source": source, "polarity": polarity, "sentences": sentences, "text": " ".join(texts),
            "unpunctuated": unpunctuated(texts)}


def composed(data: Path, split: str, rng: np.random.Generator) -> list[dict]:
    text = data / "text"
    plain = [r["text"].strip() for r in read_csv(text / "ko_single_turn_7.csv", split) if r["label"] == PLAIN]
    pools = Pools(read_csv(text / "ko_emotion_dialogue.csv", split), plain, rng)
    out = []
    for polarity, n in COUNTS[split].items():
        out += [diary(f"c-{split}-{polarity}-{i:03d}", "composed", polarity, compose(polarity, pools, rng))
                for i in range(n)]
    return out


def written(split: str) -> list[dict]:
    with (HERE / f"written_{split}.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [diary(r["id"], "written", r["polarity"], r["sentences"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: %(default)s)")
    args = parser.parse_args()
    for k, split in enumerate(("dev", "test")):
        rows = composed(args.data, split, np.random.default_rng(SEED + k)) + written(split)
        path = HERE / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        counts = {p: sum(r["polarity"] == p for r in rows) for p in ("positive", "negative", "mixed", "plain")}
        print(f"{path}: {len(rows)} diaries {counts}, {sum(len(r['sentences']) for r in rows)} sentences")


if __name__ == "__main__":
    main()
