"""The findings of a deployed-model run: the attack on the one target, flagged members, control."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from miaudit import confound, risk
from miaudit.findings.groups import GroupFindings, group_findings
from miaudit.null import null_rates, patient_max
from miaudit.results import layout as L
from miaudit.results.read import RunFiles

__all__ = ["DeployedFindings", "deployed_findings"]


@dataclass(frozen=True, eq=False)
class DeployedFindings:
    """Every figure of a deployed-model report, from the run's files."""

    record_metrics: dict[str, Any]
    """Attack metrics over the candidates' records."""
    patient_metrics: dict[str, Any]
    """Attack metrics over the candidate patients (one score each: the max of its records)."""
    tests: dict[str, Any]
    """The same-distribution control: AUC tests and the verdict, recomputed."""
    flagged: list[tuple[float, int, int]]
    """(FPR level, members flagged, members the neither model flags) per level."""
    high_risk: dict[str, int]
    """Members with exposure ≥ each threshold."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    floor: float
    survival: dict[str, risk.Survival]
    survival_counts: dict[float, int]
    top: dict[str, Any]
    groups: GroupFindings | None
    models: dict[str, Any]
    n_members: int
    n_nonmembers: int
    n_population: int

    @property
    def record_auc(self) -> float:
        return float(self.record_metrics["aggregate"]["auc"])

    @property
    def patient_auc(self) -> float:
        return float(self.patient_metrics["aggregate"]["auc"])


def _tests(run: RunFiles, member: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Patient-level AUC tests of the target, the neither model and the input classifier."""
    patient = run.records[L.PATIENT].to_numpy(np.int64)
    p = len(run.patients)
    arrays = run.confound_arrays()
    score = run.column(L.SCORE).astype(np.float64)
    attack = confound.auc_test(score[candidate], member[candidate])
    neither_score = patient_max(arrays["neither_scores"], patient, p)
    neither = confound.auc_test(neither_score[candidate], member[candidate])
    prob = arrays["classifier_probability"]
    classifier = None
    if (~np.isnan(prob)).any():
        ok = ~np.isnan(prob)
        sums = np.bincount(patient[ok], weights=prob[ok], minlength=p)
        counts = np.bincount(patient[ok], minlength=p)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_patient = sums / counts
        chosen = candidate & (counts > 0)
        classifier = confound.auc_test(per_patient[chosen], member[chosen])
    stored = run.summary.get("confound") or {}
    alpha = float(stored.get("alpha", 0.05))
    verdict = confound.assess(attack, classifier, neither, alpha=alpha)
    return {
        "attack": attack,
        "neither": neither,
        "neither_score": neither_score,
        "classifier": classifier,
        "classifier_model": stored.get("classifier_model"),
        "folds": stored.get("folds"),
        "verdict": verdict,
        "stored": stored,
    }


def _curve(scores: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fpr, tpr, _ = risk.roc(np.asarray(scores, dtype=np.float64)[None], np.asarray(member)[None])
    return fpr, tpr


def _top_members(
    run: RunFiles, member: np.ndarray, exposure: np.ndarray, top_patients: int
) -> dict[str, Any]:
    score = run.column(L.SCORE).astype(np.float64)
    fpr = run.column(L.FPR).astype(np.float64)
    p_value = run.column(L.P_VALUE).astype(np.float64)
    idx = np.flatnonzero(member & ~np.isnan(exposure))
    order = idx[np.lexsort((idx, -np.nan_to_num(score[idx], nan=-np.inf), -exposure[idx]))]
    attrs = run.attributes()
    rows = []
    for rank, i in enumerate(order[:top_patients], start=1):
        row = run.patients.iloc[i]
        rows.append(
            {
                "rank": rank,
                "patient_id": str(row[L.PATIENT_ID]),
                "exposure": float(exposure[i]),
                "fpr": float(fpr[i]),
                "p_value": float(p_value[i]),
                "score": float(score[i]),
                "records": int(row[L.RECORD_COUNT]),
                "attributes": [attrs.at[i, c] for c in attrs.columns],
            }
        )
    return {"rows": rows, "attributes": list(attrs.columns), "total": int(idx.size)}


def _models(run: RunFiles) -> dict[str, Any]:
    target = run.models.iloc[0]
    refs = run.references()
    refs = refs[refs[L.ROLE].astype(str) == "reference"]
    auroc = refs[L.TEST_AUROC].to_numpy(np.float64)
    auroc = auroc[np.isfinite(auroc)]
    return {
        "target_auroc": float(target[L.TEST_AUROC]),
        "target_test_accuracy": float(target["test_accuracy"]),
        "target_train_accuracy": float(target["train_accuracy"]),
        "target_train_records": int(target["train_records"]),
        "references": len(refs),
        "reference_auroc": float(auroc.mean()) if auroc.size else math.nan,
        "reference_train_records": float(refs["train_records"].mean()) if len(refs) else math.nan,
    }


def deployed_findings(run: RunFiles, top_patients: int = 25) -> DeployedFindings:
    """Every figure of a deployed-model report, computed once from ``run``'s files."""
    summary = run.summary
    role = run.column(L.ROLE).astype(str)
    member = run.column(L.MEMBER).astype(bool)
    candidate = role != L.ROLE_NAMES[L.ROLE_POPULATION]
    nonmember = candidate & ~member
    exposure = run.column(L.EXPOSURE).astype(np.float64)
    fpr = run.column(L.FPR).astype(np.float64)
    score = run.column(L.SCORE).astype(np.float64)
    record_scores = run.scores(run.primary)[0]
    record_member = run.membership()[0]
    record_metrics = risk.attack_metrics(record_scores[None], record_member[None])
    tests = _tests(run, member, candidate)
    patient_metrics = risk.attack_metrics(score[candidate][None], member[candidate][None])
    levels = [float(x) for x in summary.get("flag_levels", (0.1, 0.01, 0.001))]
    neither_fpr = null_rates(tests["neither_score"], nonmember)[0]
    flagged = [
        (
            lvl,
            int(np.count_nonzero(member & (fpr <= lvl))),
            int(np.count_nonzero(member & (neither_fpr <= lvl))),
        )
        for lvl in levels
    ]
    thresholds = run.thresholds
    member_exposure = exposure[member]
    high = risk.high_risk_counts(member_exposure, thresholds)
    curves = {
        "target, patients": _curve(score[candidate], member[candidate]),
        "target, records": _curve(record_scores, record_member),
        "neither model (control)": _curve(tests["neither_score"][candidate], member[candidate]),
    }
    survival = {}
    if (~np.isnan(member_exposure)).any():
        survival["members"] = risk.survival(member_exposure)
    if (~np.isnan(exposure[nonmember])).any():
        survival["non-members"] = risk.survival(exposure[nonmember])
    return DeployedFindings(
        record_metrics=record_metrics,
        patient_metrics=patient_metrics,
        tests=tests,
        flagged=flagged,
        high_risk=high,
        curves=curves,
        floor=1.0 / max(int(nonmember.sum()), 1),
        survival=survival,
        survival_counts={t: high[repr(float(t))] for t in thresholds},
        top=_top_members(run, member, exposure, top_patients),
        # exposure_ATTACK holds the members' exposure only: subgroups of members are analysed
        groups=group_findings(run),
        models=_models(run),
        n_members=int(member.sum()),
        n_nonmembers=int(nonmember.sum()),
        n_population=int((role == L.ROLE_NAMES[L.ROLE_POPULATION]).sum()),
    )
