"""One attack's figures over all (target, record) pairs: ROC, AUC, rates, high-risk counts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit import risk
from miaudit.results import layout as L
from miaudit.results.read import RunFiles
from miaudit.risk.chance import Chance, chance_from

__all__ = ["AttackFindings", "attack_findings"]


@dataclass(frozen=True, eq=False)
class AttackFindings:
    """What one attack achieves on a run, from its scores, plan and patient table."""

    name: str
    primary: bool
    fpr: np.ndarray
    """Pooled ROC over all (target, record) pairs."""
    tpr: np.ndarray
    auc: float
    """Aggregate attack AUC (the area under the pooled ROC)."""
    metrics: dict[str, Any]
    """:func:`miaudit.risk.attack_metrics` of the scores (rates, per-target AUCs)."""
    high_risk: dict[str, int]
    """Patients with exposure ≥ each threshold (key ``repr(float(t))``)."""
    median: float
    max: float
    n_out: int
    """Defined OUT pairs: 1 / n_out is the lowest FPR the ROC resolves."""
    chance: Chance | None = None
    """What chance gives: null counts, p-values, discoveries (None: the run has no null)."""
    models: int = 0
    """Models of the run (the figures' meaning depends on it)."""

    def tpr_at(self, fpr: float) -> float:
        """The pooled ROC's true-positive rate at false-positive rate ``fpr``."""
        return risk.tpr_at_fpr(self.fpr, self.tpr, fpr)


def attack_findings(run: RunFiles, name: str) -> AttackFindings:
    """The figures of attack ``name`` on ``run``, recomputed from its scores and plan."""
    membership = run.membership()
    s = run.scores(name)
    fpr, tpr, _ = risk.roc(s, membership)
    exposure, _ = run.exposure(name)
    defined = exposure[~np.isnan(exposure)]
    null = run.null(name)
    found = None
    if null is not None:
        stored = run.summary["attacks"][name].get("chance", {})
        record_p, patient_p, patient_q = run.p_values(name)
        found = chance_from(
            record_p,
            patient_p,
            patient_q,
            exposure,
            run.records[L.PATIENT].to_numpy(np.int64),
            len(exposure),
            null,
            how=run.summary.get("patient_aggregate", "max"),
            thresholds=run.thresholds,
            fdr=float(stored.get("fdr", 0.05)),
            fdr_method=stored.get("fdr_method", "bh"),
        )
    return AttackFindings(
        name=name,
        primary=name == run.primary,
        fpr=fpr,
        tpr=tpr,
        auc=risk.curve_auc(fpr, tpr),
        metrics=risk.attack_metrics(s, membership),
        high_risk=risk.high_risk_counts(exposure, run.thresholds),
        median=float(np.median(defined)) if defined.size else math.nan,
        max=float(defined.max()) if defined.size else math.nan,
        n_out=int(np.count_nonzero(~membership & ~np.isnan(s))),
        chance=found,
        models=int(run.summary.get("models", run.keep.shape[0])),
    )
