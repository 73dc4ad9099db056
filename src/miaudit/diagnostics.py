"""Diagnostic performance of the reference models.

The audit's second question is what privacy costs in accuracy, so every run reports how good
the audited models are at their clinical task, measured on each model's OUT patients (records
it never saw), which is an honest held-out estimate for every model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, softmax

from miaudit.risk.curves import diagnostic_auroc


def probabilities(logits: np.ndarray, multilabel: bool = False) -> np.ndarray:
    """Class probabilities [M, N, K] averaged over query views.

    Softmax per view for single-label models; for multi-label models each finding has its
    own sigmoid (they are trained with binary cross-entropy).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if multilabel:
        return expit(logits).mean(axis=2)
    if logits.shape[-1] == 1:
        logits = np.concatenate([np.zeros_like(logits), logits], axis=-1)
    return softmax(logits, axis=-1).mean(axis=2)


def model_performance(
    logits: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    holdout: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per model: training-set size, train/test accuracy and test AUROC.

    The test set is the model's OUT records, or the held-out records (never IN for any
    model) when the plan has them, so that every model is measured on the same patients.
    """
    multilabel = labels.ndim == 2
    probs = probabilities(logits, multilabel)
    rows = []
    for m in range(probs.shape[0]):
        inside = keep[m]
        outside = holdout if holdout is not None and holdout.any() else ~keep[m]
        if multilabel:
            correct = ((probs[m] > 0.5) == labels.astype(bool)).mean(axis=1)
        else:
            correct = probs[m].argmax(axis=1) == labels
        rows.append(
            {
                "model": m,
                "train_records": int(inside.sum()),
                "train_accuracy": float(correct[inside].mean()) if inside.any() else np.nan,
                "test_accuracy": float(correct[outside].mean()) if outside.any() else np.nan,
                "test_auroc": diagnostic_auroc(labels[outside], probs[m][outside], multilabel)
                if outside.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def summarise_performance(table: pd.DataFrame) -> dict[str, float]:
    """Mean and spread of the models' diagnostic performance, for the summary and report."""
    return {
        "auroc_mean": float(table["test_auroc"].mean()),
        "auroc_std": float(table["test_auroc"].std(ddof=1)) if len(table) > 1 else 0.0,
        "accuracy_mean": float(table["test_accuracy"].mean()),
        "accuracy_std": float(table["test_accuracy"].std(ddof=1)) if len(table) > 1 else 0.0,
        "train_accuracy_mean": float(table["train_accuracy"].mean()),
    }
