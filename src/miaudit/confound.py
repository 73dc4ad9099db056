"""Same-distribution control: is the attack measuring membership, or where the data came from?

A deployed-model audit compares the target's training patients (the roster) with patients it
never saw. When those two groups come from different sources (another hospital, another
year, a public data set used as "non-members"), an attack can separate them by dataset
identity alone, and its success would be read as a privacy risk it is not. Two estimates of
that confound are reported next to the attack's AUC:

1. **Input classifier** — a classifier told to separate members from non-members from their
   records alone (inputs and diagnostic labels, no model output), cross-validated with
   patient-level folds. Records from one distribution give it nothing to learn: its AUC is
   about 0.5. The label is included because the attacks read the true-class output, so a
   difference in label mix between the groups is a confound as well.
2. **Neither model** — the same attack, with the same references, run against a model that
   trained on *neither* group (a reference trained on population patients only, treated as
   a target). Its AUC for separating the roster from the non-members is what the attack
   scores with no membership at all.

Both are patient-level AUCs with DeLong standard errors. The rule (also written into the run's
summary): the audit is **confounded** when either AUC is above 0.5 with a one-sided p-value
below α/m, where m is the number of estimates available (Bonferroni; α = 0.05 by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from miaudit.cohort import float_inputs
from miaudit.errors import InputError
from miaudit.risk.curves import delong

__all__ = [
    "CONFOUND_RULE",
    "AUCTest",
    "ClassifierControl",
    "Confound",
    "assess",
    "auc_test",
    "delong",
    "input_classifier",
]

Classifier = Literal["boosting", "logistic"]

CONFOUND_RULE = (
    "confounded when the input classifier's AUC or the neither-model's attack AUC (patient "
    "level, members vs non-members) is above 0.5 with a one-sided DeLong p-value below "
    "alpha/m, m = number of estimates available (Bonferroni)"
)


@dataclass(frozen=True)
class AUCTest:
    """An AUC with its DeLong standard error, a two-sided interval and H0: AUC ≤ 0.5."""

    auc: float
    se: float
    lower: float
    upper: float
    p_value: float
    n_positive: int
    n_negative: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc": self.auc,
            "se": self.se,
            "lower": self.lower,
            "upper": self.upper,
            "p_value": self.p_value,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "confidence": self.confidence,
        }


def auc_test(scores: Any, labels: Any, *, confidence: float = 0.95) -> AUCTest:
    """:func:`delong` with a normal interval (clipped to [0, 1]) and a one-sided p-value.

    NaN scores are left out. The p-value tests AUC ≤ 0.5 against AUC > 0.5; a zero standard
    error (perfect separation) gives p = 0 above 0.5 and 1 otherwise.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    ok = ~np.isnan(s)
    auc, se = delong(s[ok], y[ok])
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    if math.isnan(se):
        lower = upper = p = math.nan
    elif se == 0.0:
        lower = upper = auc
        p = 0.0 if auc > 0.5 else 1.0
    else:
        lower, upper = max(0.0, float(auc - z * se)), min(1.0, float(auc + z * se))
        p = float(stats.norm.sf((auc - 0.5) / se))
    return AUCTest(
        auc=auc,
        se=se,
        lower=lower,
        upper=upper,
        p_value=p,
        n_positive=int(y[ok].sum()),
        n_negative=int((~y[ok]).sum()),
        confidence=confidence,
    )


# --------------------------------------------------------------------------- classifier


@dataclass(frozen=True, eq=False)
class ClassifierControl:
    """The input classifier's patient-level AUC and its out-of-fold record probabilities."""

    test: AUCTest
    probability: np.ndarray  # [N] out-of-fold P(member) per record; NaN for non-candidates
    classifier: str
    folds: int


def _features(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = float_inputs(np.asarray(inputs)).reshape(len(inputs), -1)
    lab = np.asarray(labels)
    if lab.ndim == 1:
        k = int(lab.max()) + 1
        onehot = np.zeros((lab.size, max(k, 2)), dtype=np.float32)
        onehot[np.arange(lab.size), lab] = 1.0
        lab = onehot[:, 1:] if onehot.shape[1] == 2 else onehot
    return np.concatenate([x, lab.astype(np.float32)], axis=1)


def _model(classifier: Classifier, seed: int) -> Any:
    if classifier == "boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed)
    if classifier == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    raise InputError(f"confound.classifier: {classifier!r}; use 'boosting' or 'logistic'")


def input_classifier(
    inputs: np.ndarray,
    labels: np.ndarray,
    patient: np.ndarray,
    member: np.ndarray,
    candidate: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    classifier: Classifier = "boosting",
) -> ClassifierControl | None:
    """Cross-validated AUC of member vs non-member patients from their records alone.

    ``member`` and ``candidate`` are [P] bool (candidates = members and evaluation
    non-members). Folds are patient-level (all records of a patient in one fold) and
    stratified by membership; a patient's score is the mean out-of-fold probability of its
    records. None when either side has fewer than 2 patients (no fold could train on it).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    member = np.asarray(member, dtype=bool)
    candidate = np.asarray(candidate, dtype=bool)
    n_member = int((member & candidate).sum())
    n_other = int((~member & candidate).sum())
    splits = min(int(folds), n_member, n_other)
    if splits < 2:
        return None
    rows = np.flatnonzero(candidate[patient])
    x = _features(inputs, labels)[rows]
    y = member[patient[rows]]
    groups = patient[rows]
    oof = np.full(rows.size, np.nan)
    cv = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
    # One thread: gradient boosting's OpenMP threads spin-wait, and on a machine whose cores
    # are busy (a training run, other jobs) a multi-threaded fit took 40x longer than this.
    with threadpool_limits(limits=1):
        for train, test in cv.split(x, y, groups):
            if np.unique(y[train]).size < 2:  # pragma: no cover - stratification prevents it
                continue
            fit = _model(classifier, seed).fit(x[train], y[train])
            oof[test] = fit.predict_proba(x[test])[:, 1]
    probability = np.full(len(patient), np.nan)
    probability[rows] = oof
    num_patients = member.size
    sums = np.bincount(groups, weights=np.nan_to_num(oof), minlength=num_patients)
    counts = np.bincount(groups[~np.isnan(oof)], minlength=num_patients)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_patient = sums / counts
    chosen = candidate & (counts > 0)
    test = auc_test(per_patient[chosen], member[chosen])
    return ClassifierControl(test=test, probability=probability, classifier=classifier, folds=splits)


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class Confound:
    """Both estimates, the attack's own AUC, and the verdict with its reasons."""

    attack: AUCTest
    classifier: AUCTest | None
    neither: AUCTest | None
    alpha: float
    confounded: bool
    reasons: list[str] = field(default_factory=list)
    rule: str = CONFOUND_RULE

    def to_dict(self) -> dict[str, Any]:
        excess = (
            self.attack.auc - self.neither.auc if self.neither is not None else math.nan
        )
        return {
            "confounded": self.confounded,
            "reasons": list(self.reasons),
            "rule": self.rule,
            "alpha": self.alpha,
            "attack": self.attack.to_dict(),
            "classifier": None if self.classifier is None else self.classifier.to_dict(),
            "neither": None if self.neither is None else self.neither.to_dict(),
            "attack_minus_neither": excess,
        }


def assess(
    attack: AUCTest,
    classifier: AUCTest | None,
    neither: AUCTest | None,
    *,
    alpha: float = 0.05,
) -> Confound:
    """Apply :data:`CONFOUND_RULE` to the available estimates."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"confound.alpha: {alpha!r}; use a level in (0, 1) such as 0.05")
    estimates = [
        (name, t)
        for name, t in (("input classifier", classifier), ("neither model", neither))
        if t is not None and not math.isnan(t.p_value)
    ]
    level = alpha / max(len(estimates), 1)
    reasons = [
        f"{name} AUC {t.auc:.3f} > 0.5 (one-sided p {_p_text(t.p_value)} < {level:.3g})"
        for name, t in estimates
        if t.auc > 0.5 and t.p_value < level
    ]
    return Confound(
        attack=attack,
        classifier=classifier,
        neither=neither,
        alpha=float(alpha),
        confounded=bool(reasons),
        reasons=reasons,
    )


def _p_text(p: float) -> str:
    return "< 1e-16" if p < 1e-16 else f"= {p:.2g}"
