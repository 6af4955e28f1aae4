"""What the e5 recipe chooses on dev after fine-tuning: the neutral head, the ensemble weight, the temperature."""

from __future__ import annotations

import numpy as np
import torch

from fusion.eval.metrics import macro_f1, roc_auc
from fusion.text.e5 import mix


def neutral_head(train_x: np.ndarray, train_y: np.ndarray, dev_x: np.ndarray, dev_y: np.ndarray) -> dict:
    """Logistic regression neutral-vs-emotional, C by dev AUC, threshold by dev balanced accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    fits = {c: LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(train_x), train_y) for c in (0.01, 0.1, 1.0)}
    auc = {c: roc_auc(dev_y, f.decision_function(scaler.transform(dev_x))) for c, f in fits.items()}
    c = max(auc, key=auc.get)
    z = fits[c].decision_function(scaler.transform(dev_x))
    grid = np.quantile(z, np.linspace(0.01, 0.99, 197))
    bal = [(np.mean(z[dev_y] >= t) + np.mean(z[~dev_y] < t)) / 2 for t in grid]
    threshold = float(grid[int(np.argmax(bal))])
    coef = fits[c].coef_[0] / scaler.scale_
    intercept = float(fits[c].intercept_[0] - (fits[c].coef_[0] * scaler.mean_ / scaler.scale_).sum())
    return {"C": c, "dev_auc": {str(k): round(v, 4) for k, v in auc.items()}, "coef": coef,
            "intercept": intercept - threshold}          # P(neutral) = 0.5 at the dev operating point


def ensemble_weight(e5_dev: np.ndarray, ngram_dev: np.ndarray, dev_y: np.ndarray,
                    labels: list[str]) -> tuple[float, dict]:
    """The n-gram model's share of the logit average with the best dev macro-F1 (each side scaled by its spread)."""
    table = {}
    for w in np.round(np.arange(0.0, 0.91, 0.1), 2):
        z = mix(e5_dev, ngram_dev, float(w))
        table[float(w)] = round(macro_f1(dev_y, z.argmax(1), labels=range(len(labels))), 4)
    return max(table, key=lambda w: (table[w], -w)), table


def temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature with the least dev log-loss."""
    def nll(t: float) -> float:
        p = torch.log_softmax(torch.from_numpy(z / t), dim=1).numpy()
        return float(-p[np.arange(len(y)), y].mean())

    return float(min(np.round(np.arange(0.3, 3.01, 0.05), 2), key=nll))
