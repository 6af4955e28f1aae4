"""The figures every evaluation and trainer reports: accuracy, macro-F1, UAR, ROC-AUC.

Macro averages (macro-F1, UAR = unweighted average recall) run over the labels present in
``y_true`` unless ``labels`` names them: a set with three of the six emotions is not penalised
for the other three, while wrong predictions into them still count.
"""

from __future__ import annotations

from collections.abc import Sequence


def _present(y_true, labels) -> list:
    return sorted(set(y_true)) if labels is None else list(labels)


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean F1 over ``labels`` (default: those present in ``y_true``)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, labels=_present(y_true, labels), average="macro", zero_division=0))


def uar(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted average recall over ``labels`` (default: those present in ``y_true``)."""
    from sklearn.metrics import recall_score

    return float(recall_score(y_true, y_pred, labels=_present(y_true, labels), average="macro", zero_division=0))


def roc_auc(positive: Sequence[bool], score: Sequence[float]) -> float | None:
    """ROC-AUC of ``score`` for the positive rows against the others; None when either group is empty."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score)) if 0 < sum(positive) < len(positive) else None


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and UAR over the labels present in ``y_true``; per-label P/R/F1 and confusion over all."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(labels), zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": macro_f1(y_true, y_pred),
        "uar": uar(y_true, y_pred),
        "per_label": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, lab in enumerate(labels)},
        "confusion": {"labels": list(labels),
                      "matrix": confusion_matrix(y_true, y_pred, labels=list(labels)).tolist()},
    }
