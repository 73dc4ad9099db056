"""Risk metrics: from membership scores to record and patient exposure.

Aggregate attack success can sit near a coin flip while single patients are identified almost
surely. This package measures both sides from the same arrays, one concept per module:

- ``curves``: the aggregate ROC over all (target, record) pairs, TPR at low FPR, attack
  metrics, and every AUC in miaudit (Mann–Whitney, DeLong, area under a curve, diagnostic);
- ``record``: each record's own separability of IN and OUT scores across targets (record
  AUC) and how it settles with the number of targets;
- ``patient``: a patient's exposure over their records, its survival function, high-risk
  counts and the most exposed patients;
- ``intervals``: exact binomial intervals; ``bounds``: empirical lower bounds on ε.

Inputs (see DESIGN.md): ``scores`` [T, N] float, the membership score of each record against
each target (higher = member; NaN = undefined and ignored); ``membership`` [T, N] bool, True
where the record was IN the target's training set; ``patient`` [N] int in 0..P-1.

Everything here is numpy/scipy/scikit-learn on arrays, so it works on scores a user already
has, without training anything (``patient_exposure(record_auc(scores, membership), patient)``).
"""

from __future__ import annotations

from miaudit.risk.bounds import epsilon_lower_bound, epsilon_lower_bound_from_scores
from miaudit.risk.curves import (
    DEFAULT_FPRS,
    attack_metrics,
    auc,
    curve_auc,
    delong,
    diagnostic_auroc,
    roc,
    tpr_at_fpr,
)
from miaudit.risk.intervals import auc_score_interval, clopper_pearson
from miaudit.risk.patient import (
    DEFAULT_RISK_THRESHOLDS,
    Survival,
    high_risk_counts,
    patient_exposure,
    patient_interval,
    survival,
    top_exposed,
)
from miaudit.risk.record import (
    DEFAULT_MODEL_COUNTS,
    RecordAUC,
    model_count_adequacy,
    pairwise_record_auc,
    record_auc,
)

__all__ = [
    "DEFAULT_FPRS",
    "DEFAULT_MODEL_COUNTS",
    "DEFAULT_RISK_THRESHOLDS",
    "RecordAUC",
    "Survival",
    "attack_metrics",
    "auc",
    "auc_score_interval",
    "clopper_pearson",
    "curve_auc",
    "delong",
    "diagnostic_auroc",
    "epsilon_lower_bound",
    "epsilon_lower_bound_from_scores",
    "high_risk_counts",
    "model_count_adequacy",
    "pairwise_record_auc",
    "patient_exposure",
    "patient_interval",
    "record_auc",
    "roc",
    "survival",
    "top_exposed",
    "tpr_at_fpr",
]
